"""Integrity of the Airflow DAG: it parses, has the chain, retries, tags and pool, and stays light to parse.

The task logic lives in vidpipe.apps.orchestration and is tested in tests/test_orchestration.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from vidpipe.layout import GPU_POOL_ENV, MODEL_NAMES, PIPELINE_DAG_ID, RETRY_DELAY_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "dags"
DAG_FILE = DAGS_FOLDER / "vidpipe_pipeline.py"
DAG_ID = PIPELINE_DAG_ID

EXPECTED_UPSTREAM = {
    "ingest_train": set(),
    "ingest_validate": {"ingest_train"},
    "ingest_test": {"ingest_train"},
    "ingest_unlabeled": {"ingest_train"},
    "label_stats": {"ingest_validate", "ingest_test"},
    "train": {"label_stats"},
    "evaluate": {"train"},
    "gate": {"evaluate"},
    "batch_predict": {"gate", "ingest_unlabeled"},
}
HEAVY_MODULES = ("tensorflow", "apache_beam", "tensorflow_transform", "keras", "numpy", "pandas",
                 "models", "beam_pipelines")
PARSE_TIME_VIDPIPE_MODULES = {"vidpipe", "vidpipe.apps", "vidpipe.apps.orchestration", "vidpipe.layout",
                              "vidpipe.outputs"}


def _airflow_environment(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


DAG_SETTINGS = (GPU_POOL_ENV, RETRY_DELAY_ENV)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """A fresh Airflow home and the DAG's parse-time settings unset, whatever the caller's environment holds."""
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _airflow_environment(home).items():
            patch.setenv(key, value)
        for key in DAG_SETTINGS:
            patch.delenv(key, raising=False)
        yield home


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="module")
def dag(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert DAG_ID in dagbag.dags, f"{DAG_ID} not found; DAGs: {sorted(dagbag.dag_ids)}"
    return dagbag.dags[DAG_ID]


def test_dag_folder_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dag_ids


def test_chain_tasks_and_dependencies(dag):
    upstream = {task.task_id: set(task.upstream_task_ids) for task in dag.tasks}
    assert upstream == EXPECTED_UPSTREAM
    assert {task.task_id for task in dag.leaves} == {"batch_predict"}
    assert {task.task_id for task in dag.roots} == {"ingest_train"}


def test_every_task_retries_with_a_delay(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_delay > timedelta(0), task.task_id


def test_tags_schedule_and_run_limits(dag):
    assert {"vidpipe", "youtube-8m"} <= set(dag.tags)
    assert dag.schedule is None
    assert dag.max_active_runs == 1
    assert dag.doc_md and "runs/<run id>" in dag.doc_md


def test_train_uses_the_gpu_pool_and_queue_and_nothing_else_does(dag):
    pools = {task.task_id: task.pool for task in dag.tasks}
    assert pools.pop("train") == "gpu"
    assert dag.get_task("train").queue == "gpu"
    assert "gpu" not in set(pools.values())


def test_params_have_descriptions_and_the_registered_models(dag):
    from models import registry

    params = dag.params
    expected = {"corpus_dir", "work_root", "model", "model_overrides", "min_gap", "tolerance",
                "max_frames", "frame_size", "backbone"}
    assert expected <= set(params.keys())
    for name in params:
        assert params.get_param(name).description, f"param {name} has no description"
    models = params.get_param("model").schema["enum"]
    assert models == list(MODEL_NAMES)
    assert set(models) <= set(registry.MODELS)
    assert params["frame_size"] is None and params["max_frames"] == 300 and params["backbone"] == "inception_v3"


def _parse_in_fresh_interpreter(tmp_path: Path, extra_env: dict[str, str] | None = None) -> dict:
    """Imports the DAG file in a new interpreter -> {task ids, pools, imported heavy modules}."""
    probe = f"""
import importlib.util, json, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_file", {str(DAG_FILE)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({{
    "seconds": time.perf_counter() - started,
    "pools": {{task.task_id: task.pool for task in module.dag.tasks}},
    "retry_delays": sorted({{task.retry_delay.total_seconds() for task in module.dag.tasks}}),
    "heavy": sorted(name for name in {list(HEAVY_MODULES)!r} if name in sys.modules),
    "vidpipe": sorted(name for name in sys.modules if name.split(".")[0] == "vidpipe"),
}}))
"""
    environment = {key: value for key, value in os.environ.items() if key not in DAG_SETTINGS}
    environment.update(_airflow_environment(tmp_path), **(extra_env or {}))
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True,
                            env=environment, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_parsing_the_dag_file_imports_no_heavy_modules(tmp_path):
    parsed = _parse_in_fresh_interpreter(tmp_path)
    assert parsed["heavy"] == []
    assert set(parsed["vidpipe"]) <= PARSE_TIME_VIDPIPE_MODULES
    assert len(parsed["pools"]) == len(EXPECTED_UPSTREAM)


def test_gpu_pool_and_retry_delay_come_from_the_environment(tmp_path):
    parsed = _parse_in_fresh_interpreter(tmp_path, {GPU_POOL_ENV: "a100", RETRY_DELAY_ENV: "7"})
    assert parsed["pools"]["train"] == "a100"
    assert parsed["retry_delays"] == [7.0]


def test_the_callers_settings_do_not_reach_the_tests(tmp_path, monkeypatch):
    monkeypatch.setenv(GPU_POOL_ENV, "callers-pool")
    monkeypatch.setenv(RETRY_DELAY_ENV, "0")
    parsed = _parse_in_fresh_interpreter(tmp_path)
    assert parsed["pools"]["train"] == "gpu" and parsed["retry_delays"] == [60.0]


def test_the_dag_file_holds_no_task_logic():
    """Each task body is one call into vidpipe.apps.orchestration; names come from vidpipe.layout."""
    source = DAG_FILE.read_text()
    for literal in ('"vidpipe_pipeline"', '"labels.csv"', '"summary.json"', '"label_counts.csv"', '"VIDPIPE_',
                    "run_stage(", "import subprocess", "import os", "import json"):
        assert literal not in source, literal
    assert source.count("return _run(orchestration.") == len(EXPECTED_UPSTREAM)
