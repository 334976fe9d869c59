"""The Airflow tasks as plain functions (vidpipe.apps.orchestration): stage arguments, run layout, manifests,
the prediction split, label checks and refusals. No stage runs here; tests/test_dags_run.py runs them all."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from vidpipe import layout
from vidpipe.apps import cli, orchestration
from vidpipe.apps.orchestration import NothingToDo, ParameterError, RunPaths, StageRefused

RUN_ID = "manual__2026-01-02T03:04:05+00:00"


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    for split in (*layout.LABELED_SPLITS, layout.UNLABELED_SPLIT):
        (root / split).mkdir(parents=True)
    (root / layout.CORPUS_LABELS_FILE).write_text("VideoId,Labels\na,1\n")
    return root


@pytest.fixture
def params(corpus, tmp_path) -> dict:
    return {"corpus_dir": str(corpus), "work_root": str(tmp_path / "work"), "model": "moe",
            "model_overrides": "train.max_steps=5  model.num_mixtures=2", "min_gap": 0.5, "tolerance": 0.01,
            "max_frames": 300, "backbone": "inception_v3", "frame_size": None, "backbone_weights": None,
            "beam_options": ["--direct_num_workers=2"], "top_k": 20}


def _write_label_counts(data_dir: Path, labels: list[int]) -> None:
    folder = data_dir / layout.LABEL_STATS_DIR
    folder.mkdir(parents=True)
    rows = "".join(f"{label},{index + 1}\n" for index, label in enumerate(labels))
    (folder / layout.LABEL_COUNTS_FILE).write_text("label,count\n" + rows)


def test_run_directories_are_keyed_by_a_safe_unique_run_id(tmp_path):
    safe = orchestration.sanitize_run_id(RUN_ID)
    assert all(character.isalnum() or character in "._-" for character in safe)
    assert safe.startswith("manual__2026-01-02T03_04_05")
    assert orchestration.sanitize_run_id("a:b") != orchestration.sanitize_run_id("a_b")
    assert orchestration.sanitize_run_id("backfill_7") == "backfill_7"
    assert orchestration.sanitize_run_id("../..") not in ("", ".", "..")
    first = RunPaths(str(tmp_path), RUN_ID)
    second = RunPaths(str(tmp_path), "manual__2026-01-02T03:04:06+00:00")
    assert first.root != second.root and first.root.parent == second.root.parent == tmp_path / "runs"
    assert first.data("test") == first.root / "data" / "test"
    assert first.transform_dir == first.root / "data" / "train" / layout.TRANSFORM_DIR
    assert {first.metrics.name, first.submission.name, first.manifest.name} == {
        "metrics.json", "submission.csv", orchestration.MANIFEST_FILE}


def test_the_work_root_defaults_to_vidpipe_home_and_must_be_absolute(params, monkeypatch, tmp_path):
    monkeypatch.setenv(layout.HOME_ENV, str(tmp_path / "home"))
    assert orchestration.run_paths({**params, "work_root": None}, "r").root == tmp_path / "home" / "work" / "runs" / "r"
    assert orchestration.run_paths(params, "r").root == tmp_path / "work" / "runs" / "r"
    with pytest.raises(ParameterError, match="work_root 'work': not an absolute path"):
        orchestration.run_paths({**params, "work_root": "work"}, "r")


def test_override_lists_accept_a_list_or_one_string():
    assert orchestration.string_list(["train.max_steps=5", "model.num_mixtures=2"]) == [
        "train.max_steps=5", "model.num_mixtures=2"]
    assert orchestration.string_list("train.max_steps=5  model.num_mixtures=2\n") == [
        "train.max_steps=5", "model.num_mixtures=2"]
    assert orchestration.string_list(None) == [] and orchestration.string_list("") == []


def test_gpu_pool_and_retry_delay_come_from_the_environment():
    assert orchestration.gpu_pool({}) == "gpu" and orchestration.gpu_pool({layout.GPU_POOL_ENV: "a100"}) == "a100"
    assert orchestration.first_retry_delay({}) == timedelta(seconds=60)
    assert orchestration.first_retry_delay({layout.RETRY_DELAY_ENV: "7"}) == timedelta(seconds=7)


def test_ingest_arguments_of_train_fit_the_pca_and_the_others_reuse_it(params, corpus, tmp_path):
    paths = orchestration.run_paths(params, RUN_ID)
    train = orchestration.ingest_arguments(params, paths, "train", labeled=True)
    assert train == ["--input", str(corpus / "train"), "--output", str(paths.data("train")), "--max-frames", "300",
                     "--backbone", "inception_v3", "--labels", str(corpus / layout.CORPUS_LABELS_FILE),
                     "--direct_num_workers=2"]
    weights = tmp_path / "weights.h5"
    weights.write_bytes(b"\0")
    test = orchestration.ingest_arguments({**params, "frame_size": 96, "backbone_weights": str(weights)}, paths,
                                          "test", labeled=True)
    assert test[test.index("--frame-size") + 1] == "96"
    assert test[test.index("--transform-dir") + 1] == str(paths.transform_dir)
    assert test[test.index("--backbone-weights") + 1] == str(weights)
    unlabeled = orchestration.ingest_arguments(params, paths, layout.UNLABELED_SPLIT, labeled=False)
    assert "--labels" not in unlabeled and unlabeled[unlabeled.index("--output") + 1] == str(paths.data("unlabeled"))


def test_ingest_refuses_a_corpus_without_its_folders_or_labels(params, corpus):
    paths = orchestration.run_paths(params, RUN_ID)
    (corpus / "test").rmdir()
    with pytest.raises(StageRefused, match=f"corpus '{corpus}' has no test/ folder"):
        orchestration.ingest_arguments(params, paths, "test", labeled=True)
    (corpus / layout.CORPUS_LABELS_FILE).unlink()
    with pytest.raises(StageRefused, match=f"corpus '{corpus}' has no labels.csv"):
        orchestration.ingest_arguments(params, paths, "train", labeled=True)
    with pytest.raises(ParameterError, match="corpus_dir 'corpus': not an absolute path"):
        orchestration.ingest_arguments({**params, "corpus_dir": "corpus"}, paths, "train", labeled=True)
    with pytest.raises(ParameterError, match="beam_options: --output is a stage option"):
        orchestration.ingest_arguments({**params, "beam_options": "--output=/home/user"}, paths, "train", True)
    with pytest.raises(ParameterError, match="backbone_weights .* not a regular file"):
        orchestration.ingest_arguments({**params, "backbone_weights": str(corpus / "nope.h5")}, paths, "train", True)


def test_a_corpus_without_unlabeled_videos_is_no_error(params, corpus):
    (corpus / layout.UNLABELED_SPLIT).rmdir()
    assert orchestration.ingest_split(params, RUN_ID, layout.UNLABELED_SPLIT, False) == {
        "split": layout.UNLABELED_SPLIT, "data": None}


def test_train_evaluate_gate_and_predict_arguments(params):
    paths = orchestration.run_paths(params, RUN_ID)
    assert orchestration.train_arguments(params, paths) == [
        "--data", str(paths.data("train")), "--validation-data", str(paths.data("validate")), "--model", "moe",
        "--train-dir", str(paths.model_dir), "--no-progress",
        "--set", "train.max_steps=5", "--set", "model.num_mixtures=2"]
    with pytest.raises(ParameterError, match="model_overrides"):
        orchestration.train_arguments({**params, "model_overrides": ["a=1\nb=2"]}, paths)
    assert orchestration.evaluate_arguments(params, paths) == [
        "--model-dir", str(paths.model_dir), "--data", str(paths.data("test")), "--output", str(paths.metrics),
        "--top-k", "20"]
    gate = orchestration.gate_arguments(params, RUN_ID, paths)
    assert gate[:4] == ["--run-id", RUN_ID, "--dag-id", layout.PIPELINE_DAG_ID]
    assert json.loads(gate[gate.index("--params") + 1]) == params
    assert gate[gate.index("--min-gap") + 1] == "0.5" and gate[gate.index("--metrics") + 1] == str(paths.metrics)
    assert orchestration.predict_arguments(params, paths, "test") == [
        "--data", str(paths.data("test")), "--model-dir", str(paths.model_dir), "--output", str(paths.submission),
        "--top-k", "20", "--direct_num_workers=2"]
    assert orchestration.label_stats_arguments(params, paths) == ["--data", str(paths.data("train")),
                                                                  "--direct_num_workers=2"]


def test_predictions_score_unlabeled_only_when_it_holds_videos(params):
    paths = orchestration.run_paths(params, RUN_ID)
    assert orchestration.prediction_split(paths) == "test"
    unlabeled = paths.data(layout.UNLABELED_SPLIT)
    unlabeled.mkdir(parents=True)
    (unlabeled / layout.SUMMARY_FILE).write_text(json.dumps({"processed": 0, "quarantined": 2}))
    assert orchestration.processed_videos(unlabeled) == 0 and orchestration.prediction_split(paths) == "test"
    (unlabeled / layout.SUMMARY_FILE).write_text(json.dumps({"processed": 3}))
    assert orchestration.prediction_split(paths) == layout.UNLABELED_SPLIT


def test_a_model_the_gate_did_not_bless_is_not_served(params):
    paths = orchestration.run_paths(params, RUN_ID)
    paths.root.mkdir(parents=True)
    paths.gate_decision.write_text(json.dumps({"blessed": False, "reason": "GAP 0.1 < 0.5"}))
    with pytest.raises(NothingToDo, match="no predictions: GAP 0.1 < 0.5"):
        orchestration.batch_predict(params, RUN_ID)
    assert not paths.submission.exists() and not paths.manifest.exists()


def test_labels_of_held_out_splits_missing_from_train(params):
    paths = orchestration.run_paths(params, RUN_ID)
    _write_label_counts(paths.data("train"), [0, 1, 2])
    _write_label_counts(paths.data("validate"), [1, 7])
    _write_label_counts(paths.data("test"), [9, 0, 8])
    assert orchestration.labels_in(paths.data("validate")) == {1, 7}
    assert orchestration.labels_in(paths.data("unlabeled")) == set()
    assert orchestration.labels_missing_from_train(paths) == {"validate": [7], "test": [8, 9]}


def test_the_manifest_says_where_everything_of_the_run_is(params, monkeypatch):
    monkeypatch.setenv(layout.CATALOG_URL_ENV, "sqlite:////tmp/catalog.db")
    paths = orchestration.run_paths(params, RUN_ID)
    for split in ("train", "test"):
        paths.data(split).mkdir(parents=True)
    decision = {"blessed": True, "reason": "first model"}
    orchestration.write_run_file(paths.gate_decision, json.dumps(decision))
    orchestration.write_manifest(paths, RUN_ID, params, predicted_split="test", submission=str(paths.submission))
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["dag_id"] == layout.PIPELINE_DAG_ID and manifest["run_id"] == RUN_ID
    assert manifest["run_dir"] == str(paths.root) and manifest["params"] == params
    assert manifest["data"] == {"train": str(paths.data("train")), "test": str(paths.data("test"))}
    assert manifest["gate"] == decision and manifest["catalog_url"] == "sqlite:////tmp/catalog.db"
    assert manifest["tensorboard_logs"] == str(paths.model_dir / layout.LOG_DIR)
    assert (manifest["predicted_split"], manifest["submission"]) == ("test", str(paths.submission))
    assert sorted(p.name for p in paths.root.iterdir()) == sorted(
        [".gate.json.lock", ".run.json.lock", "data", "gate.json", "run.json"])


def test_run_files_are_replaced_atomically_and_never_replace_a_folder(tmp_path):
    from vidpipe import outputs

    report = tmp_path / "gate.json"
    orchestration.write_run_file(report, '{"blessed": true}')
    orchestration.write_run_file(report, '{"blessed": false}')
    assert report.read_text() == '{"blessed": false}'
    (tmp_path / "run.json").mkdir()
    with pytest.raises(outputs.OutputError, match="is a folder"):
        orchestration.write_run_file(tmp_path / "run.json", "{}")


def test_stages_run_through_the_vidpipe_cli():
    assert set(orchestration.STAGE_COMMANDS) <= set(cli.COMMANDS)
    assert orchestration.stage_command("label-stats", ["--data", "d"]) == [
        sys.executable, "-m", "vidpipe.apps.cli", "label-stats", "--data", "d"]
    with pytest.raises(ValueError, match="'catalog' is not a stage command"):
        orchestration.stage_command("catalog", [])


def test_the_report_is_the_last_json_object_on_stdout():
    stdout = 'INFO starting\n{"not": "this"}\nWARNING noise {braces}\n{\n  "gap": 0.5,\n  "nested": {"a": 1}\n}\n'
    assert orchestration.last_json_document(stdout) == {"gap": 0.5, "nested": {"a": 1}}
    assert orchestration.last_json_document("no json here\n") == {}


def test_run_process_returns_the_report_and_fails_with_the_command_and_its_output(tmp_path):
    document = tmp_path / "report.json"
    document.write_text('{"videos": 3}')
    assert orchestration.run_process("echo", [sys.executable, "-m", "json.tool", str(document)]) == {"videos": 3}
    with pytest.raises(RuntimeError) as failure:
        orchestration.run_process("broken stage", [sys.executable, "-m", "json.tool", str(tmp_path / "missing.json")])
    message = str(failure.value)
    assert "broken stage failed with exit status" in message
    assert "json.tool" in message and "missing.json" in message


def test_a_refused_stage_fails_with_the_clis_one_line_error():
    with pytest.raises(RuntimeError) as failure:
        orchestration.run_stage("ingest", ["--output", "/nonexistent/out"], stage="ingest train")
    message = str(failure.value)
    assert message.startswith("ingest train failed with exit status 2: ")
    assert "vidpipe.apps.cli ingest --output /nonexistent/out" in message
    assert "vidpipe ingest: error: the following arguments are required: --input" in message
    assert "Traceback" not in message
