"""Running pipeline stages as subprocesses and laying out a run's outputs, for the Airflow DAGs.

Standard library only: DAG files import this at parse time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_TAIL_LINES = 40
TRANSFORM_SUBDIR = "feature_transform"

_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_run_id(run_id: str) -> str:
    """A directory name for `run_id`: unsafe characters become '_', plus a short hash when any did."""
    safe = _UNSAFE_PATH_CHARACTERS.sub("_", run_id).strip("._") or "run"
    if safe == run_id:
        return safe
    return f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def default_work_root() -> str:
    home = os.environ.get("VIDPIPE_HOME") or os.path.join(os.path.expanduser("~"), ".vidpipe")
    return os.path.join(home, "work")


class RunPaths:
    """Where one run keeps its outputs: <work_root>/runs/<sanitized run id>/..."""

    def __init__(self, work_root: str, run_id: str):
        self.root = Path(work_root).expanduser().resolve() / "runs" / sanitize_run_id(run_id)

    def data(self, split: str) -> Path:
        return self.root / "data" / split

    @property
    def transform_dir(self) -> Path:
        return self.data("train") / TRANSFORM_SUBDIR

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def gate_decision(self) -> Path:
        return self.root / "gate.json"

    @property
    def submission(self) -> Path:
        return self.root / "submission.csv"

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"


def string_list(value: object) -> list[str]:
    """A list param that may also arrive as one string: split on whitespace (shell quoting honoured)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _pump(stream, sink: list[str], prefix: str) -> None:
    for line in stream:
        sink.append(line)
        log.info("%s %s", prefix, line.rstrip("\n"))


def _stop(process: subprocess.Popen) -> None:
    """Ends a stage that is still running because the task itself was stopped (timeout, marked failed)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def last_json_document(text: str) -> dict:
    """The last JSON object printed on stdout (stages may print log lines before it)."""
    decoder = json.JSONDecoder()
    for start in reversed([match.start() for match in re.finditer(r"^\{", text, flags=re.MULTILINE)]):
        try:
            document, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            return document
    return {}


def run_stage(stage: str, module: str, arguments: list[str]) -> dict:
    """Runs `python -m module arguments...`, logs its output line by line and returns its JSON report.

    Raises RuntimeError with the command, exit status and the end of its output when it fails.
    """
    command = [sys.executable, "-m", module, *arguments]
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    cwd = PROJECT_ROOT if (PROJECT_ROOT / "vidpipe").is_dir() else None
    if cwd is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), environment.get("PYTHONPATH")]))
    log.info("%s: %s", stage, shlex.join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=cwd, env=environment, bufsize=1)
    stdout: list[str] = []
    stderr: list[str] = []
    stderr_reader = threading.Thread(target=_pump, args=(process.stderr, stderr, f"[{stage}]"), daemon=True)
    stderr_reader.start()
    try:
        _pump(process.stdout, stdout, f"[{stage}]")
        status = process.wait()
    finally:
        _stop(process)
    stderr_reader.join()
    if status != 0:
        tail = "".join((stderr + stdout)[-OUTPUT_TAIL_LINES:])
        raise RuntimeError(f"{stage} failed with exit status {status}: {shlex.join(command)}\n"
                           f"last lines of its output:\n{tail}")
    return last_json_document("".join(stdout))


def scalars(document: dict) -> dict:
    """The top-level numbers, strings and booleans of a report (a small XCom)."""
    return {key: value for key, value in document.items()
            if value is None or isinstance(value, (str, int, float, bool))}


def read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)
