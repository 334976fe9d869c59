"""Driving a real Airflow run of the pipeline for the demo: the Airflow CLI's environment, its commands,
one run of the DAG, and the run.json it leaves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from vidpipe.apps.orchestration import MANIFEST_FILE, RUNS_DIR, gpu_pool
from vidpipe.layout import PIPELINE_DAG_ID

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO_ROOT / "dags"


def airflow_environment(airflow_home: Path, dags_folder: Path = DAGS_FOLDER) -> dict[str, str]:
    """Environment for the Airflow CLI: its own home and SQLite metadata db, our DAGs, no examples."""
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="2",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )


class _TaskProgress:
    """Turns `airflow dags test` log lines into one line per finished task: id, state, seconds."""

    _START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    _STATE = re.compile(r"new_state=(\w+)")
    _END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.state = "?"

    def feed(self, line: str) -> str | None:
        if match := self._START.search(line):
            self.started[match.group(1)] = time.time()
            self.state = "?"
        elif match := self._STATE.search(line):
            self.state = match.group(1)
        elif match := self._END.search(line):
            task_id = match.group(1)
            seconds = time.time() - self.started.get(task_id, time.time())
            return f"  {task_id:<17} {self.state:<13} {seconds:6.1f} s"
        return None


def _airflow(arguments: list[str], environment: dict[str, str], log_path: Path, show_tasks: bool = False) -> None:
    """Runs `airflow arguments...`, appending its output to log_path; raises with the log's tail on failure."""
    airflow = shutil.which("airflow", path=environment["PATH"]) or "airflow"
    progress = _TaskProgress()
    with open(log_path, "a") as log:
        log.write(f"\n$ airflow {' '.join(arguments)}\n")
        log.flush()
        process = subprocess.Popen([airflow, *arguments], env=environment, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            log.write(line)
            summary = progress.feed(line) if show_tasks else None
            if summary:
                print(summary, flush=True)
        status = process.wait()
    if status != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-60:])
        raise RuntimeError(f"airflow {' '.join(arguments[:2])} failed (exit {status}); full log: {log_path}\n{tail}")


def setup_airflow(airflow_home: Path, log_path: Path) -> dict[str, str]:
    """Migrates the metadata database and creates the gpu pool; returns the Airflow environment."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    environment = airflow_environment(airflow_home)
    _airflow(["db", "migrate"], environment, log_path)
    _airflow(["pools", "set", gpu_pool(environment), "1", "vidpipe GPU tasks (training); one slot per GPU"],
             environment, log_path)
    return environment


def run_dag(environment: dict[str, str], conf: dict, log_path: Path, logical_date: datetime) -> None:
    """One real Airflow run of the pipeline with `conf` as its params."""
    _airflow(["dags", "test", PIPELINE_DAG_ID, logical_date.isoformat(), "--conf", json.dumps(conf)],
             environment, log_path, show_tasks=True)


def latest_manifest(work_root: Path, since: float) -> dict:
    """The run.json of the newest run written after `since` (a time.time() value)."""
    manifests = [p for p in (work_root / RUNS_DIR).glob(f"*/{MANIFEST_FILE}") if p.stat().st_mtime >= since]
    if not manifests:
        raise RuntimeError(f"the run wrote no {MANIFEST_FILE} under {work_root / RUNS_DIR}")
    return json.loads(max(manifests, key=lambda p: p.stat().st_mtime).read_text())
