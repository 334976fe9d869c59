"""vidpipe segmentation train / predict / evaluate on a tiny MS-TCN data set (models.segmentation_train)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vidpipe.apps import segmentation_cli
from vidpipe.segmentation.mstcn_format import read_predictions

CLASSES = ["SIL", "take", "pour"]
TINY_MODELS = {
    "bigru": ["--set", "model.units=8", "--set", "model.layers=1"],
    "mstcn": ["--set", "model.num_stages=2", "--set", "model.num_layers=3", "--set", "model.num_filters=8"],
}


def write_video(root, name: str, lengths: list[int], rng: np.random.Generator) -> None:
    labels = [index for index, length in zip([0, 1, 2, 0], lengths) for _ in range(length)]
    means = np.eye(len(CLASSES), 6) * 3.0
    features = means[labels] + rng.normal(0.0, 0.5, size=(len(labels), 6))
    np.save(root / "features" / f"{name}.npy", features.T.astype(np.float32))
    (root / "groundTruth" / f"{name}.txt").write_text("".join(f"{CLASSES[i]}\n" for i in labels))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_mstcn")
    for sub in ("features", "groundTruth", "splits"):
        (root / sub).mkdir()
    rng = np.random.default_rng(0)
    videos = {f"P{index:02d}_cam01_P{index:02d}_tea": [int(x) for x in rng.integers(5, 20, size=4)]
              for index in range(6)}
    for name, lengths in videos.items():
        write_video(root, name, lengths, rng)
    names = list(videos)
    (root / "mapping.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)))
    (root / "splits" / "train.split1.bundle").write_text("".join(f"{name}.txt\n" for name in names[2:]))
    (root / "splits" / "test.split1.bundle").write_text("".join(f"{name}.txt\n" for name in names[:2]))
    return root, names[:2], {name: sum(lengths) for name, lengths in videos.items()}


def train(dataset_root, train_dir, model: str, epochs: int, capsys, *extra: str) -> dict:
    argv = ["train", "--dataset", str(dataset_root), "--model", model, "--train-dir", str(train_dir),
            "--epochs", str(epochs), "--set", "train.batch_size=2", *TINY_MODELS[model], *extra]
    assert segmentation_cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["bigru", "mstcn"])
def test_train_resume_predict_evaluate(dataset, tmp_path, capsys, model):
    root, test_videos, lengths = dataset
    train_dir = tmp_path / "run"
    first = train(root, train_dir, model, 2, capsys)
    assert (first["start_step"], first["step"], first["epochs_completed"]) == (0, 4, 2)
    assert np.isfinite(first["final_loss"])
    assert set(first["test_scores"]) >= {"acc", "edit", "f1@10", "f1@25", "f1@50"}
    assert os.path.exists(first["checkpoint_path"] + ".index")
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(train_dir / "logs"))
    saved = json.loads((train_dir / "config.json").read_text())
    assert saved["model_name"] == model and saved["train"]["epochs"] == 2
    assert saved["data"]["class_names"] == CLASSES and saved["data"]["feature_dim"] == 6

    resumed = train(root, train_dir, model, 3, capsys)
    assert (resumed["start_step"], resumed["step"], resumed["epochs_completed"]) == (4, 6, 3)

    output = tmp_path / "predicted"
    argv = ["predict", "--dataset", str(root), "--train-dir", str(train_dir), "--output", str(output), "--fps", "10"]
    assert segmentation_cli.main(argv) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert sorted(os.listdir(output / "predictions")) == sorted(f"{video}.txt" for video in test_videos)
    for video in test_videos:
        labels = read_predictions(str(output / "predictions" / f"{video}.txt"))
        assert len(labels) == lengths[video] and set(labels) <= set(CLASSES)
        segments = json.loads((output / "segments" / f"{video}.json").read_text())
        assert segments["num_frames"] == lengths[video] and segments["fps"] == 10.0
        assert segments["segments"][-1]["end"] == lengths[video]
        assert (output / "timelines" / f"{video}.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "summary.png").read_bytes()[:4] == b"\x89PNG"

    argv = ["evaluate", "--ground-truth", str(root / "groundTruth"), "--predictions", str(output / "predictions"),
            "--mapping", str(root / "mapping.txt")]
    assert segmentation_cli.main(argv) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {"acc", "edit", "f1@10", "f1@25", "f1@50"}
    assert scores["videos"] == 2 and scores["frames"] == sum(lengths[video] for video in test_videos)
    assert scores["acc"] == pytest.approx(predicted["acc"])
    assert scores["acc"] == pytest.approx(resumed["test_scores"]["acc"])


def test_training_learns_the_tiny_task(dataset, tmp_path, capsys):
    root, _, _ = dataset
    result = train(root, tmp_path / "run", "bigru", 20, capsys, "--set", "train.learning_rate=0.02")
    assert result["test_scores"]["acc"] > 90.0


def test_bad_inputs_are_one_line_errors(dataset, tmp_path, capsys):
    root, _, _ = dataset
    with pytest.raises(ValueError, match="model.nope=1: model section: unknown config key 'nope'"):
        segmentation_cli.main(["train", "--dataset", str(root), "--model", "mstcn", "--train-dir",
                               str(tmp_path / "a"), "--set", "model.nope=1"])
    with pytest.raises(ValueError, match="has cell 'gru'"):
        segmentation_cli.main(["train", "--dataset", str(root), "--model", "bigru", "--train-dir",
                               str(tmp_path / "a"), "--set", "model.cell=lstm"])
    with pytest.raises(FileNotFoundError, match="config.json: no such file"):
        segmentation_cli.main(["predict", "--dataset", str(root), "--train-dir", str(tmp_path / "none"),
                               "--output", str(tmp_path / "out")])
    train_dir = tmp_path / "run"
    train(root, train_dir, "bigru", 1, capsys)
    with pytest.raises(ValueError, match="different \\['model_name', 'model'\\]"):
        train(root, train_dir, "mstcn", 1, capsys)
