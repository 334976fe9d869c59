"""One real Airflow run of the whole chain (`airflow dags test`) on a tiny corpus, then a re-run of the
catalog-writing tasks under the same run id, which must leave the catalog's row counts unchanged."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import TEST_FRAME_SIZE
from vidpipe.apps.demo.airflow_driver import latest_manifest, run_dag, setup_airflow
from vidpipe.apps.demo.corpus import SplitSizes, make_corpus
from vidpipe.layout import PIPELINE_DAG_ID as DAG_ID

CATALOG_TABLES = ("pipeline_runs", "model_versions", "evaluations", "blessings", "champions")
RERUN_TASKS = ("gate", "batch_predict")


def _row_counts(catalog_db: Path) -> dict[str, int]:
    with sqlite3.connect(catalog_db) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in CATALOG_TABLES}


@pytest.fixture(scope="module")
def airflow_run(tmp_path_factory, packaged_clip, monkeypatch_module):
    root = tmp_path_factory.mktemp("dag_run")
    catalog_db = root / "catalog.db"
    monkeypatch_module.setenv("VIDPIPE_CATALOG_URL", f"sqlite:///{catalog_db}")
    monkeypatch_module.setenv("VIDPIPE_RETRY_DELAY_SECONDS", "1")
    monkeypatch_module.setenv("VIDPIPE_GPU_POOL", "gpu")
    corpus = make_corpus(root / "corpus", SplitSizes(train=2, validate=1, test=1), real_clips=[packaged_clip])
    log_path = root / "airflow.log"
    environment = setup_airflow(root / "airflow", log_path)
    conf = {
        "corpus_dir": str(corpus.root),
        "work_root": str(root / "work"),
        "model": "logistic",
        "model_overrides": ["train.max_steps=20", "input.batch_size=4", "train.num_epochs=50"],
        "min_gap": 0.0,
        "tolerance": 0.0,
        "frame_size": TEST_FRAME_SIZE,
        "max_frames": 4,
    }
    started = datetime.now(UTC).timestamp()
    run_dag(environment, conf, log_path, datetime.now(UTC).replace(microsecond=0))
    manifest = latest_manifest(root / "work", started)
    return {"root": root, "corpus": corpus, "catalog_db": catalog_db, "environment": environment,
            "conf": conf, "manifest": manifest, "log": log_path}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_run_writes_everything_under_its_own_run_directory(airflow_run):
    manifest = airflow_run["manifest"]
    run_dir = Path(manifest["run_dir"])
    assert run_dir.parent == airflow_run["root"] / "work" / "runs"
    assert manifest["run_id"].startswith("manual__") and ":" not in run_dir.name
    for split in ("train", "validate", "test", "unlabeled"):
        assert Path(manifest["data"][split]) == run_dir / "data" / split
        assert (run_dir / "data" / split / "summary.json").is_file()
    assert (run_dir / "data" / "train" / "feature_transform").is_dir()
    for split in ("validate", "test", "unlabeled"):
        summary = json.loads((run_dir / "data" / split / "summary.json").read_text())
        assert summary["config"]["pca"].startswith("tf.Transform:") and "feature_transform" in summary["config"]["pca"]
    assert list((run_dir / "model" / "logs").rglob("events.out.tfevents*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["gap"] <= 1.0 and metrics["num_videos"] == 4


def test_submission_has_a_row_per_readable_unlabeled_clip(airflow_run):
    manifest = airflow_run["manifest"]
    assert manifest["predicted_split"] == "unlabeled"
    with open(manifest["submission"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    readable = sorted(Path(path).stem for path in airflow_run["corpus"].unlabeled)
    assert sorted(row["VideoId"] for row in rows) == readable
    pairs = rows[0]["LabelConfidencePairs"].split()
    assert len(pairs) == 2 * 6 and all(0.0 <= float(score) <= 1.0 for score in pairs[1::2])
    with open(Path(manifest["data"]["unlabeled"]) / "quarantine.csv", newline="") as handle:
        quarantined = sorted(row["path"] for row in csv.DictReader(handle))
    assert quarantined == sorted(airflow_run["corpus"].broken)


def test_the_catalog_holds_exactly_this_run(airflow_run):
    manifest = airflow_run["manifest"]
    assert _row_counts(airflow_run["catalog_db"]) == {table: 1 for table in CATALOG_TABLES}
    with sqlite3.connect(airflow_run["catalog_db"]) as connection:
        run_id, dag_id, params = connection.execute("SELECT run_id, dag_id, params FROM pipeline_runs").fetchone()
        model_name, model_dir = connection.execute("SELECT model_name, model_dir FROM model_versions").fetchone()
    assert (run_id, dag_id) == (manifest["run_id"], DAG_ID)
    assert json.loads(params)["corpus_dir"] == airflow_run["conf"]["corpus_dir"]
    assert (model_name, model_dir) == ("logistic", manifest["model_dir"])
    decision = manifest["gate"]
    assert decision["blessed"] and decision["champion_version_id"] == decision["model_version_id"]


def test_rerunning_tasks_of_the_same_run_id_leaves_the_catalog_as_it_was(airflow_run):
    manifest = airflow_run["manifest"]
    before = _row_counts(airflow_run["catalog_db"])
    gate_before = json.loads((Path(manifest["run_dir"]) / "gate.json").read_text())
    for task_id in RERUN_TASKS:
        result = subprocess.run(
            ["airflow", "tasks", "test", DAG_ID, task_id, manifest["run_id"], "-t", json.dumps(airflow_run["conf"])],
            check=False, env=airflow_run["environment"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{task_id}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert _row_counts(airflow_run["catalog_db"]) == before
    gate_after = json.loads((Path(manifest["run_dir"]) / "gate.json").read_text())
    assert gate_after == gate_before
    assert sorted(p.name for p in Path(manifest["run_dir"]).parent.iterdir()) == [Path(manifest["run_dir"]).name]


def test_a_refused_parameter_fails_the_task_at_once_without_retries(airflow_run):
    """orchestration's StageRefused becomes AirflowFailException in the DAG's one wrapper."""
    conf = {**airflow_run["conf"], "beam_options": ["--output=/home/user"]}
    result = subprocess.run(
        ["airflow", "tasks", "test", DAG_ID, "label_stats", airflow_run["manifest"]["run_id"], "-t", json.dumps(conf)],
        check=False, env=airflow_run["environment"], capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert "beam_options: --output is a stage option" in output, output[-3000:]
    assert "AirflowFailException" in output and "up_for_retry" not in output.lower(), output[-3000:]
