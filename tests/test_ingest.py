"""Ingest stages on tiny real clips (ffmpeg lavfi) and a packaged real clip, with Beam's TestPipeline."""

from __future__ import annotations

import csv
import json
import os
import shutil

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import audio, decode, ingest
from beam_pipelines.features import BackboneConfig, FrameFeatureExtractor
from beam_pipelines.label_stats import AnalyzeLabels
from tests.conftest import TEST_FRAME_SIZE, make_broken_files, make_clip
from vidpipe import layout, records, schema
from vidpipe.label_stats import class_weight_rows
from vidpipe.labels_csv import parse_label_line

CONFIG = ingest.IngestConfig(backbone=BackboneConfig(input_size=TEST_FRAME_SIZE, batch_size=8))


def test_decode_gives_one_frame_per_second(clips_dir, ffmpeg_available):
    path = os.path.join(clips_dir, "cells.mp4")
    frames = decode.decode_frames(path, fps=1, max_frames=300, size=TEST_FRAME_SIZE)
    assert frames.shape == (4, TEST_FRAME_SIZE, TEST_FRAME_SIZE, 3) and frames.dtype == np.uint8
    assert decode.decode_frames(path, fps=2, max_frames=300, size=TEST_FRAME_SIZE).shape[0] == 8
    assert decode.decode_frames(path, fps=1, max_frames=2, size=TEST_FRAME_SIZE).shape[0] == 2
    info = decode.probe(path)
    assert info.has_audio and info.duration_s == pytest.approx(4.0, abs=0.1)
    assert not decode.probe(os.path.join(clips_dir, "fractal.mp4")).has_audio


def test_broken_files_get_reasons_a_person_understands(clips_dir, tmp_path):
    broken = make_broken_files(str(tmp_path), os.path.join(clips_dir, "bars.mp4"))
    for path, words in broken.items():
        with pytest.raises(decode.UnreadableVideo) as caught:
            decode.probe(path)
            decode.decode_frames(path, size=TEST_FRAME_SIZE)
        assert words in caught.value.reason, (path, caught.value.reason)


def test_audio_embedding_separates_tone_noise_and_silence(clips_dir):
    tone = decode.decode_audio(os.path.join(clips_dir, "bars.mp4"))
    noise = decode.decode_audio(os.path.join(clips_dir, "cells.mp4"))
    tone_embedding, has_tone = audio.embed_audio(tone, 3, decode.AUDIO_SAMPLE_RATE)
    noise_embedding, _ = audio.embed_audio(noise, 4, decode.AUDIO_SAMPLE_RATE)
    assert has_tone and tone_embedding.shape == (3, schema.AUDIO_SIZE)
    assert np.all(np.abs(tone_embedding) <= 2.5)
    assert np.linalg.norm(tone_embedding.mean(0) - noise_embedding.mean(0)) > 1.0
    twice_per_second, _ = audio.embed_audio(noise, 8, decode.AUDIO_SAMPLE_RATE, fps=2)
    assert twice_per_second.shape == (8, schema.AUDIO_SIZE) and np.abs(twice_per_second).sum(axis=1).min() > 0
    silent, has_audio = audio.embed_audio(decode.decode_audio(os.path.join(clips_dir, "fractal.mp4")), 2, 16000)
    assert not has_audio and not silent.any()


def test_decode_stage_splits_videos_and_quarantine(clips_dir, tmp_path):
    broken = make_broken_files(str(tmp_path), os.path.join(clips_dir, "bars.mp4"))
    paths = sorted(os.path.join(clips_dir, name) for name in os.listdir(clips_dir)) + sorted(broken)
    with TestPipeline() as p:
        decoded = p | beam.Create(paths) | ingest.DecodeVideos(CONFIG)
        frame_counts = decoded.videos | beam.Map(
            lambda v: (v["video_id"], v["frames"].shape[0], v["audio"].shape, v["has_audio"]))
        assert_that(frame_counts, equal_to([
            ("bars", 3, (3, 128), True), ("fractal", 2, (2, 128), False), ("cells", 4, (4, 128), True)]))
        reasons = decoded[ingest.QUARANTINE_TAG] | beam.Map(lambda q: (q[0], [w for w in broken.values() if w in q[1]]))
        assert_that(reasons, equal_to([(path, [words]) for path, words in broken.items()]), label="quarantine")


def test_feature_extractor_is_batched_and_deterministic(clips_dir):
    frames = decode.decode_frames(os.path.join(clips_dir, "cells.mp4"), size=TEST_FRAME_SIZE)
    config = BackboneConfig(input_size=TEST_FRAME_SIZE, batch_size=3)
    features = FrameFeatureExtractor(config)(frames)
    assert features.shape == (4, schema.CNN_FEATURE_SIZE) and features.dtype == np.float32
    again = FrameFeatureExtractor(BackboneConfig(input_size=TEST_FRAME_SIZE, batch_size=4))(frames)
    np.testing.assert_allclose(features, again, rtol=1e-4, atol=1e-5)
    assert not np.allclose(features[0], features[-1])


def test_backbone_loads_weights_from_a_file(tmp_path, clips_dir):
    from beam_pipelines.features import build_backbone

    source = build_backbone(BackboneConfig(input_size=TEST_FRAME_SIZE))
    source.layers[1].set_weights([w + 0.5 for w in source.layers[1].get_weights()])
    weights = str(tmp_path / "inception.weights.h5")
    source.save_weights(weights)
    frames = decode.decode_frames(os.path.join(clips_dir, "bars.mp4"), size=TEST_FRAME_SIZE)
    loaded = FrameFeatureExtractor(BackboneConfig(weights_path=weights, input_size=TEST_FRAME_SIZE))
    random_init = FrameFeatureExtractor(BackboneConfig(input_size=TEST_FRAME_SIZE))
    assert not loaded.config.warnings() and random_init.config.warnings()
    preprocessed = __import__("keras").applications.inception_v3.preprocess_input(frames.astype(np.float32))
    np.testing.assert_allclose(loaded(frames), source.predict(preprocessed, verbose=0), atol=1e-4)
    assert not np.allclose(loaded(frames), random_init(frames))


def _low_rank_videos(num_videos=4, frames=12, rank=6, seed=0):
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, schema.CNN_FEATURE_SIZE)).astype(np.float32)
    scales = np.linspace(3.0, 0.5, rank, dtype=np.float32)
    videos = []
    for index in range(num_videos):
        codes = rng.normal(size=(frames, rank)).astype(np.float32) * scales
        videos.append({"video_id": f"v{index}", "cnn": codes @ basis + 1.0})
    return videos


def test_tft_pca_whitens_to_1024_dims(tmp_path):
    videos = _low_rank_videos()
    collected = []

    def check(rows):
        rgb = np.stack([row for _, (_, row) in rows])
        collected.append(rgb)
        assert rgb.shape == (48, schema.RGB_SIZE)
        variances = rgb.var(axis=0)
        np.testing.assert_allclose(variances[:6], 1.0, atol=1e-2)
        assert np.abs(rgb[:, 6:]).max() < 1e-2
        np.testing.assert_allclose(rgb.mean(axis=0)[:6], 0.0, atol=1e-3)
        cov = np.cov(rgb[:, :6].T, bias=True)
        np.testing.assert_allclose(cov, np.eye(6), atol=2e-2)

    with tft_beam.Context(temp_dir=str(tmp_path / "tft")):
        with TestPipeline() as p:
            projected = p | beam.Create(videos) | ingest.ProjectFeatures(CONFIG, str(tmp_path / "transform"))
            assert_that(projected | beam.combiners.ToList(), lambda actual: check(actual[0]))
    assert os.path.isdir(tmp_path / "transform" / "transform_fn")


def test_youtube8m_pca_files_are_applied_as_published(tmp_path):
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(schema.CNN_FEATURE_SIZE, 1)).astype(np.float32)
    size = schema.CNN_FEATURE_SIZE
    eigenvecs = np.linalg.qr(rng.normal(size=(size, size)))[0].T.astype(np.float32)
    eigenvals = np.linspace(5, 0.1, schema.CNN_FEATURE_SIZE, dtype=np.float32).reshape(-1, 1)
    for name, value in (("mean", mean), ("eigenvecs", eigenvecs), ("eigenvals", eigenvals)):
        np.save(tmp_path / f"{name}.npy", value)
    video = {"video_id": "v", "cnn": rng.normal(size=(3, schema.CNN_FEATURE_SIZE)).astype(np.float32)}
    expected = (video["cnn"] - mean[:, 0]) @ eigenvecs[:1024].T / np.sqrt(eigenvals[:1024, 0] + 1e-4)
    config = ingest.IngestConfig(pca_dir=str(tmp_path))

    def check(rows):
        got = np.stack([row for _, (_, row) in sorted(rows, key=lambda r: r[1][0])])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        return True

    with TestPipeline() as p:
        projected = p | beam.Create([video]) | ingest.ProjectFeatures(config)
        assert_that(projected | beam.combiners.ToList(), lambda actual: check(actual[0]))


def test_label_statistics_with_tf_transform(tmp_path):
    with tft_beam.Context(temp_dir=str(tmp_path / "tft")):
        with TestPipeline() as p:
            rows = p | beam.Create([[1, 2], [2], [2, 3], []]) | AnalyzeLabels(str(tmp_path / "stats"))
            assert_that(rows, equal_to([(1, 1, 5 / 3), (2, 3, 5 / 9), (3, 1, 5 / 3)]))
    stats = json.loads((tmp_path / "stats" / "label_stats.json").read_text())
    assert stats == {"num_videos": 3, "num_classes": 3, "max_label": 3, "num_label_occurrences": 5}
    assert (tmp_path / "stats" / "label_counts.csv").read_text().splitlines()[0] == "label,count,weight"
    assert class_weight_rows({4: 2, 9: 6}) == [(4, 2, 2.0), (9, 6, 8 / 12)]


def _read_records(output_dir):
    frame_files = tf.io.gfile.glob(layout.record_pattern(output_dir, layout.FRAME_DIR))
    video_files = tf.io.gfile.glob(layout.record_pattern(output_dir, layout.VIDEO_DIR))
    frame_data = tf.data.TFRecordDataset(frame_files).map(records.parse_frame_example)
    video_data = tf.data.TFRecordDataset(video_files).map(records.parse_video_example)
    frames = {r["id"].numpy().decode(): r for r in frame_data}
    videos = {r["id"].numpy().decode(): r for r in video_data}
    return frames, videos


def test_ingest_end_to_end_with_real_clip_and_broken_files(clips_dir, packaged_clip, tmp_path):
    inputs = tmp_path / "inputs"
    shutil.copytree(clips_dir, inputs)
    shutil.copy(packaged_clip, inputs / "carphone.mp4")
    broken = make_broken_files(str(inputs), os.path.join(clips_dir, "bars.mp4"))
    make_clip(str(tmp_path / "bars.ts"), "testsrc", 1)
    shutil.copy(tmp_path / "bars.ts", inputs / "bars.ts")
    labels = tmp_path / "labels.csv"
    labels.write_text("VideoId,Labels\nbars,0 4\nfractal,1\ncells,2 5\ncarphone,3\n")
    output = tmp_path / "out"

    summary = ingest.run(["--input", str(inputs), "--output", str(output), "--labels", str(labels),
                          "--frame-size", str(TEST_FRAME_SIZE), "--num-shards", "2"])

    frames, videos = _read_records(str(output))
    expected_frames = {"bars": 3, "fractal": 2, "cells": 4, "carphone": 4}
    assert {vid: r["rgb"].shape[0] for vid, r in frames.items()} == expected_frames
    assert {vid: r["audio"].shape[0] for vid, r in frames.items()} == expected_frames
    assert frames["bars"]["labels"].numpy().tolist() == [0, 4]
    assert frames["carphone"]["rgb"].shape[1] == 1024 and frames["carphone"]["audio"].shape[1] == 128
    assert set(videos) == set(expected_frames)
    assert videos["cells"]["labels"].numpy().tolist() == [2, 5]
    assert not np.any(videos["fractal"]["mean_audio"].numpy())

    with open(output / "quarantine.csv") as handle:
        quarantined = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert set(quarantined) == set(broken) | {str(inputs / "bars.ts")}
    assert "duplicate video id" in quarantined[str(inputs / "bars.ts")]
    for path, words in broken.items():
        assert words in quarantined[path]

    assert summary["processed"] == 4 and summary["quarantined"] == 5 and summary["frames"] == 13
    assert any("randomly initialised" in w for w in summary["warnings"])
    assert any("fewer than its 1024" in w for w in summary["warnings"])
    assert summary["videos_without_audio"] == ["carphone", "fractal"]
    assert json.loads((output / "summary.json").read_text())["processed"] == 4
    counts = (output / "label_stats" / "label_counts.csv").read_text().splitlines()
    assert counts[0] == "label,count,weight" and len(counts) == 7 and counts[1] == "0,1,1"

    again = tmp_path / "again"
    ingest.run(["--input", os.path.join(clips_dir, "cells.mp4"), "--output", str(again),
                "--frame-size", str(TEST_FRAME_SIZE), "--transform-dir", str(output / layout.TRANSFORM_DIR)])
    reused, _ = _read_records(str(again))
    assert json.loads((output / layout.TRANSFORM_DIR / layout.TRANSFORM_INFO_FILE).read_text())["feature_size"] == 2048
    with pytest.raises(ValueError, match="fitted on inception_v3 features"):
        ingest.config_from_args(ingest.parse_args(["--input", "x", "--output", "y", "--backbone", "efficientnet_lite0",
                                                   "--transform-dir", str(output / layout.TRANSFORM_DIR)])[0])
    with pytest.raises(FileNotFoundError, match="no transform_fn"):
        ingest.config_from_args(
            ingest.parse_args(["--input", "x", "--output", "y", "--transform-dir", str(tmp_path)])[0])
    reused_rgb, first_rgb = reused["cells"]["rgb"].numpy(), frames["cells"]["rgb"].numpy()
    np.testing.assert_allclose(reused_rgb, first_rgb, atol=4 / 255 + 1e-6)
    assert np.mean(reused_rgb == first_rgb) > 0.95

    from vidpipe import feature_space

    space = feature_space.read(str(output))
    assert {key: value for key, value in space.items() if key != "id"} == {
        "backbone": "inception_v3", "weights": "random-init(seed=20160927)", "frame_size": TEST_FRAME_SIZE,
        "fps": 1.0, "max_frames": schema.MAX_FRAMES, "audio": audio.EMBEDDING_NAME,
        "pca": feature_space.digest_folder(output / layout.TRANSFORM_DIR)}
    assert summary["feature_space"] == space["id"]
    assert feature_space.read(str(again)) == space


def test_cli_names_the_bad_labels_line_and_exits_2(clips_dir, tmp_path):
    import subprocess
    import sys

    labels = tmp_path / "labels.csv"
    labels.write_text("VideoId,Labels\nbars,0 4\ncells,two\n")
    result = subprocess.run([sys.executable, "-m", "vidpipe.apps.cli", "ingest", "--input", clips_dir, "--output",
                             str(tmp_path / "out"), "--labels", str(labels)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{labels}, line 3" in result.stderr and "Traceback" not in result.stderr


def test_label_rows_and_input_listing(clips_dir):
    assert parse_label_line("vid1,3 7 11\n") == ("vid1", [3, 7, 11])
    assert parse_label_line("vid2,") == ("vid2", [])
    with pytest.raises(ValueError, match="bad row 'vid3,x'"):
        parse_label_line("vid3,x")
    single = os.path.join(clips_dir, "bars.mp4")
    assert decode.list_videos(single) == [single]
    assert decode.list_videos(clips_dir) == decode.list_videos(os.path.join(clips_dir, "*.mp4"))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        decode.list_videos(os.path.join(clips_dir, "*.mkv"))


# --- output safety: ingest owns its output folder, builds it aside and swaps it in whole ---

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_RUN = ["--frame-size", str(TEST_FRAME_SIZE), "--max-frames", "3"]


def _tree_bytes(folder) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) -> its bytes."""
    return {os.path.relpath(os.path.join(root, name), folder): open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(folder) for name in names}


def _stage_environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])),
                TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def first_ingest(tmp_path_factory, clips_dir):
    """One real ingest of the three clips (3 shards per level) into <root>/out."""
    root = tmp_path_factory.mktemp("rerun")
    inputs = root / "inputs"
    shutil.copytree(clips_dir, inputs)
    labels = root / "labels.csv"
    labels.write_text("VideoId,Labels\nbars,0 4\nfractal,1\ncells,2 5\n")
    output = root / "out"
    summary = ingest.run(["--input", str(inputs), "--output", str(output), "--labels", str(labels),
                          "--num-shards", "3", *SMALL_RUN])
    return {"root": root, "inputs": inputs, "labels": labels, "output": output, "summary": summary}


def test_killed_and_concurrent_runs_keep_the_previous_output_and_a_rerun_replaces_it_whole(first_ingest):
    import signal
    import subprocess
    import sys
    import time

    from vidpipe import feature_space, outputs

    root, output = first_ingest["root"], first_ingest["output"]
    before = _tree_bytes(output)
    assert len(tf.io.gfile.glob(str(output / "frame" / "*"))) == 3
    first_space = json.loads((output / "feature_space.json").read_text())
    victim = subprocess.Popen(
        [sys.executable, "-m", "beam_pipelines.ingest", "--input", str(first_ingest["inputs"]), "--output",
         str(output), "--labels", str(first_ingest["labels"]), *SMALL_RUN],
        cwd=REPO_ROOT, env=_stage_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not any(".out.tmp-" in p.name for p in root.iterdir()):
            assert victim.poll() is None and time.monotonic() < deadline, "the run never created its staging folder"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGSTOP)
        with pytest.raises(outputs.OutputError, match=rf"another run is writing it \(ingest .*pid {victim.pid}\b"):
            ingest.run(["--input", str(first_ingest["inputs"]), "--output", str(output), *SMALL_RUN])
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
    assert _tree_bytes(output) == before
    assert any(".out.tmp-" in p.name for p in root.iterdir())

    summary = ingest.run(["--input", str(first_ingest["inputs"] / "[bc]*.mp4"), "--output", str(output),
                          "--labels", str(first_ingest["labels"]), "--num-shards", "1",
                          "--transform-dir", str(output / layout.TRANSFORM_DIR), *SMALL_RUN])

    frames, videos = _read_records(str(output))
    assert set(frames) == set(videos) == {"bars", "cells"} and summary["processed"] == 2
    assert sorted(os.listdir(output / "frame")) == sorted(os.listdir(output / "video")) == [
        "part-00000-of-00001.tfrecord"]
    assert json.loads((output / "label_stats" / "label_stats.json").read_text()) == {
        "num_videos": 2, "num_classes": 4, "max_label": 5, "num_label_occurrences": 4}
    assert (output / "quarantine.csv").read_text() == "path,reason\n"
    transform = layout.TRANSFORM_DIR
    assert _tree_bytes(output / transform) == {
        name[len(transform) + 1:]: data for name, data in before.items() if name.startswith(transform)}
    space = json.loads((output / "feature_space.json").read_text())
    assert space == first_space and summary["feature_space"] == first_space["id"]
    assert space["pca"] == feature_space.digest_folder(output / layout.TRANSFORM_DIR)
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".out")) == [".out.lock"]


def test_ingest_refuses_an_output_that_holds_its_inputs_and_keeps_every_file(clips_dir, tmp_path):
    import subprocess
    import sys

    corpus = tmp_path / "corpusX"
    shutil.copytree(clips_dir, corpus / "video")
    before = _tree_bytes(corpus)
    result = subprocess.run([sys.executable, "-m", "vidpipe.apps.cli", "ingest", "--input", str(corpus / "video"),
                             "--output", str(corpus), *SMALL_RUN],
                            cwd=REPO_ROOT, env=_stage_environment(), capture_output=True, text=True, timeout=300,
                            check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidpipe: error:")]
    assert result.returncode == 2, result.stderr
    assert errors == [(f"vidpipe: error: --input {corpus / 'video'} lies inside --output {corpus}, which ingest "
                       f"replaces whole; choose an output folder outside the inputs")]
    assert "Traceback" not in result.stderr
    assert _tree_bytes(corpus) == before and sorted(os.listdir(tmp_path)) == ["corpusX"]

    with pytest.raises(ValueError, match=r"--input \S+/video/b\*\.mp4 lies inside --output \S+/video, "):
        ingest.run(["--input", str(corpus / "video" / "b*.mp4"), "--output", str(corpus / "video"), *SMALL_RUN])
    labels = corpus / "labels.csv"
    labels.write_text("VideoId,Labels\nbars,1\n")
    with pytest.raises(ValueError, match=r"--labels .*labels.csv lies inside --output"):
        ingest.run(["--input", clips_dir, "--output", str(corpus), "--labels", str(labels), *SMALL_RUN])
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))


def test_ingest_never_replaces_a_folder_of_someone_else_s_files(clips_dir, tmp_path):
    from vidpipe import outputs

    only_videos = tmp_path / "only_videos"
    shutil.copytree(clips_dir, only_videos / "video")
    mixed = tmp_path / "mixed"
    (mixed / "frame").mkdir(parents=True)
    (mixed / "holiday.mp4").write_bytes(b"precious")
    before = _tree_bytes(tmp_path)
    with pytest.raises(outputs.OutputError, match=r"only_videos: holds files that vidpipe did not write "
                                                  r"\(video/bars.mp4, video/cells.mp4, video/fractal.mp4\)"):
        ingest.run(["--input", clips_dir, "--output", str(only_videos), *SMALL_RUN])
    with pytest.raises(outputs.OutputError, match=r"mixed: holds files that vidpipe did not write \(holiday.mp4\)"):
        ingest.run(["--input", clips_dir, "--output", str(mixed), *SMALL_RUN])
    assert _tree_bytes(tmp_path) == before


def test_label_stats_replaces_its_folder_whole_and_never_a_foreign_one(first_ingest, tmp_path):
    from beam_pipelines import label_stats_pipeline
    from vidpipe import outputs

    data = first_ingest["output"]
    expected = json.loads((data / "label_stats" / "label_stats.json").read_text())
    stale = tmp_path / "stats" / "label_stats"
    (stale / "transform" / "old_run").mkdir(parents=True)
    (stale / "label_stats.json").write_text('{"num_classes": 999}')
    stats = label_stats_pipeline.run(["--data", str(data), "--output", str(tmp_path / "stats")])
    assert stats == expected == json.loads((stale / "label_stats.json").read_text())
    assert not (stale / "transform" / "old_run").exists() and (stale / "transform" / "transform_fn").is_dir()
    assert outputs.read_marker(stale)["stage"] == "label_stats"
    assert (stale / "label_counts.csv").read_text() == (data / "label_stats" / "label_counts.csv").read_text()

    foreign = tmp_path / "mine" / "label_stats"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(outputs.OutputError, match=r"holds files that vidpipe did not write \(notes.txt\)"):
        label_stats_pipeline.run(["--data", str(data), "--output", str(tmp_path / "mine")])
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(os.listdir(foreign)) == ["notes.txt"]
    nested = tmp_path / "nested" / "label_stats"
    shutil.copytree(data / "video", nested / "video")
    with pytest.raises(outputs.OutputError, match=r"--data \S+/nested/label_stats lies inside the output"):
        label_stats_pipeline.run(["--data", str(nested), "--output", str(nested.parent)])
    assert sorted(os.listdir(nested)) == ["video"]
