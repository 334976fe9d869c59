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

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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


class ParameterError(ValueError):
    """A run parameter from the trigger form that the DAG refuses (the message names it and the reason)."""


_BEAM_FLAGS = frozenset({
    "save_main_session", "no_save_main_session", "use_public_ips", "no_use_public_ips", "runtime_type_check",
    "performance_runtime_type_check", "no_pipeline_type_check", "no_direct_runner_use_stacked_bundle",
    "enable_hot_key_logging", "no_wait_until_finish",
})
_COUNT = re.compile(r"[0-9]{1,9}")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.,:=@+-]{1,200}")
_LOCATION = re.compile(r"(gs|s3)://[A-Za-z0-9_./-]{1,500}|/[A-Za-z0-9_./-]{0,500}")
BEAM_OPTION_VALUES = {
    "runner": re.compile(r"DirectRunner|PrismRunner|DataflowRunner|FlinkRunner|SparkRunner"),
    "direct_running_mode": re.compile(r"in_memory|multi_threading|multi_processing"),
    "direct_num_workers": _COUNT,
    "direct_runner_bundle_repeat": _COUNT,
    "num_workers": _COUNT,
    "max_num_workers": _COUNT,
    "number_of_worker_harness_threads": _COUNT,
    "sdk_worker_parallelism": _COUNT,
    "parallelism": _COUNT,
    "max_parallelism": _COUNT,
    "disk_size_gb": _COUNT,
    "max_cache_memory_usage_mb": _COUNT,
    "autoscaling_algorithm": re.compile(r"NONE|THROUGHPUT_BASED"),
    "flexrs_goal": re.compile(r"COST_OPTIMIZED|SPEED_OPTIMIZED"),
    "pickle_library": re.compile(r"default|dill|cloudpickle"),
    "default_sdk_harness_log_level": re.compile(r"DEBUG|INFO|WARNING|ERROR|CRITICAL"),
    "machine_type": _PLAIN_VALUE,
    "worker_machine_type": _PLAIN_VALUE,
    "disk_type": _PLAIN_VALUE,
    "worker_disk_type": _PLAIN_VALUE,
    "min_cpu_platform": re.compile(r"[A-Za-z0-9 _.-]{1,100}"),
    "project": _PLAIN_VALUE,
    "region": _PLAIN_VALUE,
    "zone": _PLAIN_VALUE,
    "worker_region": _PLAIN_VALUE,
    "worker_zone": _PLAIN_VALUE,
    "network": _PLAIN_VALUE,
    "subnetwork": re.compile(r"[A-Za-z0-9_./-]{1,300}"),
    "job_name": re.compile(r"[a-z][a-z0-9-]{0,62}"),
    "experiments": _PLAIN_VALUE,
    "experiment": _PLAIN_VALUE,
    "temp_location": _LOCATION,
    "staging_location": _LOCATION,
}
"""Beam options the trigger form may pass, each with the values it may take.

Everything else is refused: the stages' own options, and Beam options that run code or reach other hosts
(setup_file, requirements_file, extra_packages, sdk_location, environment_type/config, job_endpoint,
flink_master, ...), so a person who can trigger the DAG can tune the runner but not change what runs or
where the outputs go."""

STAGE_OPTIONS = frozenset({
    "input", "output", "labels", "data", "validation_data", "model_dir", "train_dir", "transform_dir", "pca_dir",
    "backbone", "backbone_weights", "frame_size", "fps", "max_frames", "cnn_batch_size", "num_shards", "catalog_url",
    "model", "model_name", "set", "top_k", "metrics", "params", "run_id", "dag_id", "min_gap", "tolerance",
    "batch_size", "no_progress", "help",
})
"""Options of the vidpipe stages (with '-' as '_'): the DAG sets these itself, a trigger may not."""


def _refuse_line_breaks(name: str, text: str) -> None:
    if "\0" in text or "\n" in text or "\r" in text:
        raise ParameterError(f"{name} {text!r}: holds a NUL or line break")


def beam_options(value: object) -> list[str]:
    """The ``beam_options`` run parameter -> checked ``--name=value`` / ``--name`` arguments for the stages.

    Raises ParameterError for anything but a Beam option of BEAM_OPTION_VALUES (with an allowed value) or
    a flag of _BEAM_FLAGS; stage options (STAGE_OPTIONS) get a message of their own.
    """
    try:
        arguments = string_list(value)
    except ValueError as error:
        raise ParameterError(f"beam_options {value!r}: {error}") from None
    for argument in arguments:
        _refuse_line_breaks("beam_options", argument)
        name, has_value, option_value = argument.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else ""
        if not key:
            raise ParameterError(f"beam_options: {argument!r} is not --name or --name=value")
        if key in STAGE_OPTIONS:
            raise ParameterError(f"beam_options: {name} is a stage option that the DAG sets itself; "
                                 f"beam_options may only hold Beam pipeline options")
        if key in _BEAM_FLAGS:
            if has_value:
                raise ParameterError(f"beam_options: {name} is a flag and takes no value")
            continue
        pattern = BEAM_OPTION_VALUES.get(key)
        if pattern is None:
            raise ParameterError(f"beam_options: {name} is not one of the Beam options a run may set "
                                 f"({', '.join(sorted([*BEAM_OPTION_VALUES, *_BEAM_FLAGS]))})")
        if not has_value or not pattern.fullmatch(option_value):
            raise ParameterError(f"beam_options: {argument!r} needs a value of the form {pattern.pattern!r}")
    return arguments


def checked_path(value: object, name: str, kind: str | None = None) -> Path:
    """A path parameter from the trigger form -> the resolved path.

    It must be absolute (``~`` allowed) and hold no NUL or line break; ``kind`` "dir" requires an existing
    folder, "file" an existing regular file. Raises ParameterError naming the parameter otherwise.
    """
    text = "" if value is None else str(value)
    _refuse_line_breaks(name, text)
    expanded = Path(text).expanduser()
    if not text or not expanded.is_absolute():
        raise ParameterError(f"{name} {text!r}: not an absolute path (give the full path on the workers)")
    path = expanded.resolve()
    if kind == "dir" and not path.is_dir():
        raise ParameterError(f"{name} {text!r}: not a directory")
    if kind == "file" and not path.is_file():
        raise ParameterError(f"{name} {text!r}: not a regular file")
    return path


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
