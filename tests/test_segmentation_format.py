"""MS-TCN data set folders, prediction files, segments JSON, the evaluate command, timeline plots, synthetic data."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bench.data_segmentation import GRAMMAR, SyntheticSegmentationConfig, write_synthetic_breakfast
from vidpipe.segmentation import evaluate, plots
from vidpipe.segmentation.metrics import transcript
from vidpipe.segmentation.mstcn_format import (
    RESULT_HEADER,
    LengthMismatchWarning,
    MstcnDataset,
    evaluation_pairs,
    read_bundle,
    read_class_index,
    read_features,
    read_mapping,
    read_predictions,
    segments_json,
    write_predictions,
    write_segments_json,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


@pytest.fixture
def dataset(tmp_path):
    """Three videos: v1 (6 frames), v2 (features 5 frames, labels 4), v3 (unknown label)."""
    root = tmp_path / "breakfast"
    write(str(root / "mapping.txt"), "0 SIL\n1 pour_milk\n2 stir_milk\n")
    np.save(root / "features_v1.npy", np.zeros(1))  # stray file, never read
    os.makedirs(root / "features")
    np.save(root / "features" / "v1.npy", np.arange(18, dtype=np.float64).reshape(3, 6))
    np.save(root / "features" / "v2.npy", np.ones((3, 5), np.float32))
    np.save(root / "features" / "v3.npy", np.ones((3, 2), np.float32))
    write(str(root / "groundTruth" / "v1.txt"), "SIL\npour_milk\npour_milk\nstir_milk\nstir_milk\nSIL\n")
    write(str(root / "groundTruth" / "v2.txt"), "SIL\nSIL\nstir_milk\nSIL\n\n")
    write(str(root / "groundTruth" / "v3.txt"), "SIL\nfry_egg\n")
    write(str(root / "splits" / "train.split1.bundle"), "v1.txt\nv2.txt\n")
    write(str(root / "splits" / "test.split1.bundle"), "v3.txt\n")
    return str(root)


def test_dataset_reads_features_as_frames_by_dims_and_labels_as_indices(dataset):
    data = MstcnDataset(dataset)
    assert data.class_names == ["SIL", "pour_milk", "stir_milk"] and data.num_classes == 3
    assert data.videos("train") == ["v1", "v2"]
    video = data.load("v1")
    assert video.features.shape == (6, 3) and video.features.dtype == np.float32
    np.testing.assert_array_equal(video.features[:, 0], np.arange(6))
    np.testing.assert_array_equal(video.labels, [0, 1, 1, 2, 2, 0])


def test_dataset_cuts_features_and_labels_to_the_shorter_with_a_warning(dataset):
    with pytest.warns(LengthMismatchWarning, match="v2: 5 feature frames but 4 labels"):
        video = MstcnDataset(dataset).load("v2")
    assert video.features.shape == (4, 3)
    np.testing.assert_array_equal(video.labels, [0, 0, 2, 0])


def test_dataset_sample_rate_keeps_every_nth_frame(dataset):
    video = MstcnDataset(dataset, sample_rate=2).load("v1")
    np.testing.assert_array_equal(video.features[:, 0], [0, 2, 4])
    np.testing.assert_array_equal(video.labels, [0, 1, 2])


def test_dataset_unknown_label_names_the_video(dataset):
    with pytest.raises(ValueError, match="v3: label 'fry_egg' is not in mapping.txt"):
        list(MstcnDataset(dataset).iterate("test"))


def test_index_files(tmp_path):
    path = str(tmp_path / "classInd.txt")
    write(path, "1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n")
    assert read_class_index(path) == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    write(path, "0 SIL\n2 stir\n")
    with pytest.raises(ValueError, match="indices must run 0..1"):
        read_mapping(path)
    write(path, "0 SIL\n1 SIL\n")
    with pytest.raises(ValueError, match=r"classInd.txt:2: name 'SIL' appears twice"):
        read_mapping(path)
    write(path, "zero SIL\n")
    with pytest.raises(ValueError, match=r"classInd.txt:1: index 'zero' is not an integer"):
        read_mapping(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_mapping(str(tmp_path / "missing.txt"))


def test_bundle_lines_become_video_names(tmp_path):
    path = str(tmp_path / "test.split1.bundle")
    write(path, "P03_cam01_P03_cereals.txt\nP04_webcam01_P04_tea.txt\n\n")
    assert read_bundle(path) == ["P03_cam01_P03_cereals", "P04_webcam01_P04_tea"]
    write(path, "a.txt\na.txt\n")
    with pytest.raises(ValueError, match="'a' is listed twice"):
        read_bundle(path)


def test_prediction_files_in_both_formats_and_the_written_format(tmp_path):
    mstcn = str(tmp_path / "P03_cereals")
    write(mstcn, f"{RESULT_HEADER}\nSIL SIL take_bowl take_bowl")
    assert read_predictions(mstcn) == ["SIL", "SIL", "take_bowl", "take_bowl"]
    per_line = str(tmp_path / "P04.txt")
    write(per_line, "SIL\ntake_bowl\n")
    assert read_predictions(per_line) == ["SIL", "take_bowl"]
    written = str(tmp_path / "out" / "P05")
    write_predictions(written, ["SIL", "pour_milk", "SIL"])
    with open(written) as handle:
        assert handle.read() == f"{RESULT_HEADER}\nSIL pour_milk SIL\n"
    assert read_predictions(written) == ["SIL", "pour_milk", "SIL"]
    assert os.listdir(tmp_path / "out") == ["P05"]
    with pytest.raises(ValueError, match="without spaces"):
        write_predictions(written, ["pour milk"])
    write(mstcn, f"{RESULT_HEADER}\n")
    with pytest.raises(ValueError, match="no frame labels after the header"):
        read_predictions(mstcn)


def test_features_are_parsed_never_unpickled(tmp_path):
    path = str(tmp_path / "evil.npy")
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="evil.npy: not a numpy array file"):
        read_features(path)
    pickled = str(tmp_path / "pickled.npy")
    with open(pickled, "wb") as handle:
        pickle.dump([1, 2], handle)
    with pytest.raises(ValueError, match="pickled.npy: not a numpy array file"):
        read_features(pickled)
    np.save(path, np.zeros(4))
    with pytest.raises(ValueError, match=r"expected a 2-D \[D, T\] array"):
        read_features(path)
    np.save(path, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN or infinity"):
        read_features(path)


def test_segments_json_in_frames_and_seconds(tmp_path):
    labels = ["SIL"] * 15 + ["pour_milk"] * 30 + ["stir_milk"] * 3
    assert segments_json(labels, fps=15) == [
        {"label": "SIL", "start": 0, "end": 15, "start_seconds": 0.0, "end_seconds": 1.0},
        {"label": "pour_milk", "start": 15, "end": 45, "start_seconds": 1.0, "end_seconds": 3.0},
        {"label": "stir_milk", "start": 45, "end": 48, "start_seconds": 3.0, "end_seconds": 3.2},
    ]
    path = str(tmp_path / "segments" / "v1.json")
    write_segments_json(path, labels, fps=15, video="v1", background=["SIL"])
    with open(path) as handle:
        document = json.load(handle)
    assert document["video"] == "v1" and document["num_frames"] == 48
    assert [segment["label"] for segment in document["segments"]] == ["pour_milk", "stir_milk"]
    with pytest.raises(ValueError, match="fps must be > 0"):
        segments_json(labels, fps=0)


@pytest.fixture
def results(tmp_path):
    """Ground truth and predictions of two videos (one per file format)."""
    truth = tmp_path / "groundTruth"
    predictions = tmp_path / "results"
    write(str(truth / "v1.txt"), "SIL\na\na\na\nb\nb\nSIL\n")
    write(str(truth / "v2.txt"), "c\nc\n")
    write(str(truth / "unscored.txt"), "a\n")
    write(str(predictions / "v1"), f"{RESULT_HEADER}\nSIL a a b b b b\n")
    write(str(predictions / "v2.txt"), "d\nd\n")
    write(str(tmp_path / "mapping.txt"), "0 SIL\n1 a\n2 b\n3 c\n4 d\n")
    return str(truth), str(predictions), str(tmp_path)


def test_evaluate_prints_mstcn_scores(results, capsys):
    truth, predictions, root = results
    assert evaluate.main(["--ground-truth", truth, "--predictions", predictions,
                          "--mapping", os.path.join(root, "mapping.txt")]) == 0
    scores = json.loads(capsys.readouterr().out)
    # v1: 5 of 7 frames, segments SIL a b SIL vs SIL a b: edit 75; v2: 0 of 2, edit 0
    assert scores["acc"] == pytest.approx(100 * 5 / 9)
    assert scores["edit"] == pytest.approx(37.5)
    # tau .1/.25: TP 3 (SIL, a, b), FP 1 (d), FN 2 (last SIL, c); tau .5: b IoU 2/4 still hits
    assert scores["f1@10"] == pytest.approx(100 * 2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))
    assert scores["f1@50"] == pytest.approx(scores["f1@10"])
    assert scores["videos"] == 2 and scores["frames"] == 9


def test_evaluate_with_background(results, capsys):
    truth, predictions, _ = results
    evaluate.main(["--ground-truth", truth, "--predictions", predictions, "--background", "SIL"])
    scores = json.loads(capsys.readouterr().out)
    assert scores["acc"] == pytest.approx(100 * 5 / 9)
    assert scores["edit"] == pytest.approx(50.0)
    # TP 2 (a, b), FP 1 (d), FN 1 (c)
    assert scores["f1@25"] == pytest.approx(200 / 3)


def test_evaluate_bad_input_names_the_video(results, tmp_path):
    truth, predictions, root = results
    write(os.path.join(root, "test.bundle"), "v1.txt\nunscored.txt\n")
    with pytest.raises(ValueError, match=r"unscored: no prediction file in .*results"):
        evaluate.main(["--ground-truth", truth, "--predictions", predictions,
                       "--videos", os.path.join(root, "test.bundle")])
    write(os.path.join(predictions, "v2.txt"), "d\nd\nd\n")
    with pytest.raises(ValueError, match="v2: 3 predicted frames but 2 ground-truth frames"):
        list(evaluation_pairs(truth, predictions))
    write(os.path.join(predictions, "v2.txt"), "e\ne\n")
    with pytest.raises(ValueError, match=r"v2: prediction label\(s\) \['e'\] are not in"):
        evaluate.evaluate(truth, predictions, os.path.join(root, "mapping.txt"))


def test_evaluate_command_reports_bad_input_in_one_line(results, tmp_path):
    truth, _, _ = results
    missing = str(tmp_path / "nowhere")
    run = subprocess.run([sys.executable, "-m", "vidpipe.segmentation.evaluate", "--ground-truth", truth,
                          "--predictions", missing], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=False)
    assert run.returncode == 2
    assert run.stderr.strip() == f"vidpipe: error: {missing}: no such predictions folder"


def _colours_in(image: Image.Image) -> set[tuple[int, int, int]]:
    return {colour for _, colour in image.getcolors(maxcolors=1 << 20)}


def test_timeline_shows_the_classes_present_in_their_colours(tmp_path):
    names = ["SIL", "take_cup", "pour_milk", "stir", "unused"]
    colours = plots.class_colours(len(names))
    truth = [0] * 50 + [1] * 100 + [3] * 80 + [0] * 20
    predicted = ["SIL"] * 60 + ["take_cup"] * 80 + ["pour_milk"] * 30 + ["stir"] * 80
    path = str(tmp_path / "plots" / "v1.png")
    plots.write_timeline(path, truth, predicted, names, title="v1", scores={"acc": 80.0, "edit": 50.0})
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] == 1200
    present = _colours_in(image.convert("RGB"))
    assert {colours[0], colours[1], colours[2], colours[3]} <= present
    assert colours[4] not in present
    with pytest.raises(ValueError, match="3 predicted frames but 2 ground-truth frames"):
        plots.timeline_image([0, 1], [0, 1, 1], names)
    with pytest.raises(ValueError, match="'fry_egg' is not a class name"):
        plots.timeline_image(["SIL"], ["fry_egg"], names)


def test_summary_figure_of_a_test_set(tmp_path):
    names = [f"action_{index}" for index in range(30)]
    colours = plots.class_colours(len(names))
    assert len(set(colours)) == 30
    videos = [(f"video_{index}", [index % 25] * 40 + [25] * 10, [index % 25] * 45 + [26] * 5) for index in range(8)]
    path = str(tmp_path / "summary.png")
    plots.write_summary(path, videos, names, scores={"acc": 90.0}, max_videos=5)
    image = Image.open(path).convert("RGB")
    present = _colours_in(image)
    assert colours[25] in present and colours[26] in present
    assert colours[7] in present  # video_7 is not drawn, but the per-class chart covers every video
    assert colours[29] not in present


def test_synthetic_breakfast_follows_its_grammar_and_reads_back(tmp_path):
    output = str(tmp_path / "synthetic")
    cfg = SyntheticSegmentationConfig(videos=12, people=4, feature_dim=16, activity_dims=4, mean_action_frames=60,
                                      background_frames=(10, 30), seed=3)
    summary = write_synthetic_breakfast(output, cfg)
    assert summary["train_videos"] + summary["test_videos"] == 12 and summary["test_videos"] == 6
    data = MstcnDataset(output)
    assert data.class_names[0] == "SIL"
    videos = data.videos("train") + data.videos("test")
    assert len(videos) == 12
    activities_seen = set()
    for name in videos:
        video = data.load(name)
        activity = name.rsplit("_", 1)[1]
        activities_seen.add(activity)
        assert video.features.shape[1] == 16 and video.features.shape[0] > 100
        actions = [data.class_names[index] for index in transcript(video.labels)]
        assert actions[0] == "SIL" and actions[-1] == "SIL"
        grammar = [action.rstrip("?") for action in GRAMMAR[activity]]
        required = [action for action in GRAMMAR[activity] if not action.endswith("?")]
        assert actions[1:-1] == [action for action in grammar if action in actions[1:-1]]
        assert set(required) <= set(actions)
    assert activities_seen == set(GRAMMAR)
    again = write_synthetic_breakfast(output, cfg)
    assert again == summary
    np.testing.assert_array_equal(MstcnDataset(output).load(videos[0]).features, data.load(videos[0]).features)
