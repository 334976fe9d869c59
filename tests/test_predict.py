"""Batch prediction survives bad records, refuses a mismatched model, checks its arguments first, writes atomically."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines import predict
from models import inputs
from models.serving import predict_records
from models.synthetic import synthetic_videos, write_synthetic_data
from models.train import train
from vidpipe import feature_space, records, schema
from vidpipe.apps import gate_cli
from vidpipe.apps.train_cli import build_config
from vidpipe.catalog import Catalog
from vidpipe.cli_args import RepeatedOptionError
from vidpipe.gate import GateConfig

NUM_CLASSES = 6
SPACE = feature_space.describe(backbone="efficientnet_lite0", weights="sha256:aa", frame_size=224, fps=1.0,
                               max_frames=300, audio="logmel64-meanstd", pca="sha256:bb")
OTHER_SPACE = feature_space.describe(**{**{k: v for k, v in SPACE.items() if k != "id"}, "pca": "sha256:cc"})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A logistic model on 6 classes, trained on records in SPACE (a few steps: the tests need a real export)."""
    root = tmp_path_factory.mktemp("predict_model")
    data = write_synthetic_data(str(root / "train"), num_videos=32, num_classes=NUM_CLASSES, seed=1, levels=("video",))
    feature_space.write(data.data_dir, SPACE)
    train(data.data_dir, str(root / "model"), build_config("logistic", ["train.max_steps=3", "input.batch_size=16"]),
          progress=False)
    return str(root / "model")


def write_records(data_dir: Path, videos: list[tuple[str, list[int]]], space: dict | None = SPACE,
                  extra: list[bytes] = (), files: int = 2) -> Path:
    """Video-level records for (video_id, labels) with learnable features, plus raw ``extra`` records."""
    folder = data_dir / "video"
    folder.mkdir(parents=True)
    features = synthetic_videos(len(videos), NUM_CLASSES, seed=3)
    serialized = []
    for (video_id, labels), (_, _, rgb, audio) in zip(videos, features):
        serialized.append(records.video_example(video_id, labels, schema.dequantize(rgb).mean(axis=0),
                                                schema.dequantize(audio).mean(axis=0)).SerializeToString())
    serialized += list(extra)
    for shard in range(files):
        with tf.io.TFRecordWriter(str(folder / f"part-{shard:05d}.tfrecord")) as writer:
            for record in serialized[shard::files]:
                writer.write(record)
    if space is not None:
        feature_space.write(str(data_dir), space)
    return data_dir


def run_predict(data_dir, model_dir, output, *extra: str) -> dict:
    return predict.run(["--data", str(data_dir), "--model-dir", model_dir, "--output", str(output), *extra],
                       test_pipeline=TestPipeline())


def csv_rows(path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {row["VideoId"]: row["LabelConfidencePairs"] for row in csv.DictReader(handle)}


def leftovers(folder: Path) -> list[str]:
    """Entries of ``folder`` other than the output lock file that staged_file keeps beside an output."""
    return sorted(entry.name for entry in folder.iterdir() if not entry.name.endswith(".lock"))


GOOD = [(f"vid{index}", [index % NUM_CLASSES]) for index in range(8)]


def test_bad_ids_are_skipped_listed_and_the_rest_written(model_dir, tmp_path, caplog):
    bad_ids = ["a,b", "line\nbreak", " padded ", ""]
    same = records.video_example("twin", [1], np.full(1024, 0.1), np.full(128, 0.1)).SerializeToString()
    other = records.video_example("clash", [1], np.full(1024, 0.2), np.full(128, 0.2)).SerializeToString()
    clash = records.video_example("clash", [1], np.full(1024, -0.2), np.full(128, -0.2)).SerializeToString()
    data = write_records(tmp_path / "data", GOOD + [(video_id, [0]) for video_id in bad_ids],
                         extra=[same, same, other, clash, b"not a record"])
    output = tmp_path / "out" / "submission.csv"
    with caplog.at_level(logging.WARNING, logger="beam_pipelines.predict"):
        report = run_predict(data, model_dir, output, "--top-k", "3")

    rows = csv_rows(output)
    assert sorted(rows) == sorted([video_id for video_id, _ in GOOD] + ["twin"])
    assert all(len(pairs.split()) == 6 for pairs in rows.values())
    assert report["videos"] == 9 and report["skipped_count"] == 6
    skipped = {item["id"]: item["reason"] for item in report["skipped"]}
    assert set(skipped) == {repr(video_id) for video_id in bad_ids} | {repr("clash"), None}
    assert "comma" in skipped["'a,b'"] and "line break" in skipped[repr("line\nbreak")]
    assert "whitespace" in skipped["' padded '"] and "empty" in skipped["''"]
    assert "2 records carry video id 'clash' with different features" in skipped["'clash'"]
    assert "is not a video-level record" in skipped[None] and "part-0000" in skipped[None]
    assert any("skipped 6 record(s)" in message for message in caplog.messages)
    assert leftovers(output.parent) == ["submission.csv"]


def test_model_from_another_feature_space_is_refused_before_the_pipeline(model_dir, tmp_path):
    data = write_records(tmp_path / "data", GOOD, space=OTHER_SPACE)
    output = tmp_path / "out.csv"
    with pytest.raises(ValueError, match=r"feature space mismatch: model .* is in space "
                                         rf"{SPACE['id']} but records .* {OTHER_SPACE['id']} .*differ in pca"):
        run_predict(data, model_dir, output)
    assert leftovers(tmp_path) == ["data"]
    with pytest.raises(ValueError, match="feature space mismatch"):
        predict_records(model_dir, str(data))
    unknown = write_records(tmp_path / "unknown_space", GOOD, space=None)
    assert run_predict(unknown, model_dir, tmp_path / "ok.csv")["videos"] == len(GOOD)


def test_labels_outside_the_model_warn_in_predict_and_fail_evaluate(model_dir, tmp_path, caplog):
    data = write_records(tmp_path / "data", GOOD[:5] + [("late1", [2, NUM_CLASSES + 1]), ("late2", [NUM_CLASSES])])
    with caplog.at_level(logging.WARNING, logger="beam_pipelines.predict"):
        report = run_predict(data, model_dir, tmp_path / "sub.csv")
    assert report["videos"] == 7 and report["labels_outside_model"] == {"records": 2, "max_label": NUM_CLASSES + 1}
    assert any("2 record(s)" in message and f"{NUM_CLASSES} classes (largest {NUM_CLASSES + 1})" in message
               for message in caplog.messages)
    with pytest.raises(ValueError, match=rf"2 of 7 records carry label ids >= the model's {NUM_CLASSES} classes "
                                         rf"\(largest {NUM_CLASSES + 1}\)"):
        predict_records(model_dir, str(data))


@pytest.mark.parametrize("extra, message", [
    (["--top-k", "0"], "--top-k 0: must be 1 or more"),
    (["--batch-size", "0"], "--batch-size 0: must be 1 or more"),
    (["--output", "{tmp}/out.csv"], "--output given twice"),
])
def test_bad_numbers_and_repeated_options_are_refused_before_anything(model_dir, tmp_path, extra, message):
    data = write_records(tmp_path / "data", GOOD)
    argv = ["--data", str(data), "--model-dir", model_dir, "--output", str(tmp_path / "sub.csv")]
    with pytest.raises(ValueError, match=message) as raised:
        predict.run(argv + [value.format(tmp=tmp_path) for value in extra], test_pipeline=TestPipeline())
    assert leftovers(tmp_path) == ["data"]
    if "twice" in message:
        assert isinstance(raised.value, RepeatedOptionError)


def test_bad_paths_are_refused_before_anything(model_dir, tmp_path):
    data = write_records(tmp_path / "data", GOOD)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"--data .*missing: no such folder"):
        run_predict(tmp_path / "missing", model_dir, tmp_path / "sub.csv")
    with pytest.raises(ValueError, match="is a folder, expected a CSV file path"):
        run_predict(data, model_dir, tmp_path)
    with pytest.raises(ValueError, match=r"a_file is not a folder"):
        run_predict(data, model_dir, tmp_path / "a_file" / "deeper" / "sub.csv")
    assert leftovers(tmp_path) == ["a_file", "data"]
    report = run_predict(data, model_dir, tmp_path / "new" / "folder" / "sub.csv")
    assert report["videos"] == len(GOOD) and len(csv_rows(tmp_path / "new" / "folder" / "sub.csv")) == len(GOOD)


def test_bad_argument_is_one_line_and_exit_status_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "beam_pipelines.predict", "--data", str(tmp_path), "--output",
                             str(tmp_path / "sub.csv"), "--top-k", "0"], check=False, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 2 and result.stderr == "vidpipe: error: --top-k 0: must be 1 or more\n"
    assert list(tmp_path.iterdir()) == []


def test_no_records_is_an_error_and_nothing_is_written(model_dir, tmp_path):
    (tmp_path / "none" / "video").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"--data .*none: no video-level records match .*\*\.tfrecord$"):
        run_predict(tmp_path / "none", model_dir, tmp_path / "sub.csv")
    empty = write_records(tmp_path / "empty", [])
    with pytest.raises(ValueError, match=r"--data .*empty: no video-level records match .*are empty\)"):
        run_predict(empty, model_dir, tmp_path / "sub.csv")
    all_bad = write_records(tmp_path / "all_bad", [("a,b", [0]), ("", [1])])
    with pytest.raises(ValueError, match=r"all 2 records were skipped, e\.g\. empty video id; nothing written"):
        run_predict(all_bad, model_dir, tmp_path / "sub.csv")
    assert leftovers(tmp_path) == ["all_bad", "empty", "none"]


def test_truncated_file_is_named_and_the_old_output_stays(model_dir, tmp_path):
    data = write_records(tmp_path / "data", GOOD)
    shard = data / "video" / "part-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-40])
    output = tmp_path / "out" / "sub.csv"
    output.parent.mkdir()
    output.write_text("previous submission\n")
    with pytest.raises(ValueError, match=rf"^record file {shard}: truncated or corrupt TFRecord file "
                                         r"\(truncated record at \d+[^\n]*$") as raised:
        run_predict(data, model_dir, output)
    assert "\n" not in str(raised.value)
    assert output.read_text() == "previous submission\n" and leftovers(output.parent) == ["sub.csv"]
    with pytest.raises(ValueError, match=rf"^record file {shard}: truncated or corrupt"):
        predict_records(model_dir, str(data), batch_size=2)

    from models.train import resolve_config

    cfg = resolve_config(build_config("logistic", [f"num_classes={NUM_CLASSES}"]))
    files = inputs.record_files(str(data / "video" / "*.tfrecord"))
    dataset = inputs.make_dataset(str(data / "video" / "*.tfrecord"), cfg.input, NUM_CLASSES, training=True, seed=0)
    with pytest.raises(ValueError, match=rf"^record file {shard}: truncated or corrupt"), \
            inputs.naming_unreadable_file(files):
        for _ in dataset:
            pass


def test_champion_without_files_is_named(model_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    data = write_records(tmp_path / "data", GOOD)
    with pytest.raises(ValueError, match=r"^no --model-dir given and the catalog has no champion yet \(train, "
                                         r"evaluate and gate a model first\)$"):
        predict.run(["--data", str(data), "--output", str(tmp_path / "s.csv"), "--catalog-url", url])
    champion_dir = tmp_path / "champion"
    shutil.copytree(model_dir, champion_dir)
    metrics = {"gap": 0.5, "hit_at_one": 0.5, "perr": 0.5, "map": 0.5, "num_videos": 8}
    with Catalog(url) as catalog:
        decision = gate_cli.gate(catalog, "run-7", "dag", "logistic", str(champion_dir), metrics,
                                 GateConfig(min_gap=0.1, tolerance=0.01))
    assert decision["blessed"]
    report = predict.run(["--data", str(data), "--output", str(tmp_path / "s.csv"), "--catalog-url", url],
                         test_pipeline=TestPipeline())
    assert report["videos"] == len(GOOD) and report["model"].startswith(str(champion_dir))
    shutil.rmtree(champion_dir)
    version = decision["model_version_id"]
    with pytest.raises(FileNotFoundError, match=rf"^the catalog's champion, model version {version} \(run run-7\): "
                                                rf"its model folder {champion_dir} no longer exists"):
        predict.run(["--data", str(data), "--output", str(tmp_path / "s.csv"), "--catalog-url", url])
    assert os.path.exists(tmp_path / "s.csv")
