"""The Airflow tasks of vidpipe as plain functions: each takes the run's params and run id, runs one stage as a
subprocess (``python -m vidpipe.apps.cli <command> ...``) and returns the task's XCom dict.

Standard library only (plus the stdlib-only vidpipe.layout and vidpipe.outputs): DAG files import this at parse
time. Nothing here knows Airflow: bad input raises StageRefused (the task fails without retries), a task with
nothing to do raises NothingToDo (the task is skipped); the DAG file translates both.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vidpipe import layout

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_TAIL_LINES = 40
DEFAULT_GPU_POOL = "gpu"
DEFAULT_RETRY_DELAY_SECONDS = 60.0
RUNS_DIR = "runs"
MANIFEST_FILE = "run.json"
CLI_MODULE = "vidpipe.apps.cli"
STAGE_COMMANDS = ("ingest", "label-stats", "train", "evaluate", "gate", "predict")
"""The commands of ``vidpipe`` (vidpipe.apps.cli.COMMANDS) that the DAG runs as stages."""


class StageRefused(ValueError):
    """Input that a task refuses (a parameter, a corpus without its folders): the task fails without retries."""


class ParameterError(StageRefused):
    """A run parameter from the trigger form that the DAG refuses (the message names it and the reason)."""


class NothingToDo(Exception):
    """A task that has nothing to do on this run (e.g. no predictions for a model the gate did not bless)."""


def gpu_pool(environment: dict[str, str] | None = None) -> str:
    """The Airflow pool of the GPU tasks: $VIDPIPE_GPU_POOL, else "gpu"."""
    return (os.environ if environment is None else environment).get(layout.GPU_POOL_ENV) or DEFAULT_GPU_POOL


def first_retry_delay(environment: dict[str, str] | None = None) -> timedelta:
    """The first retry delay of every task: $VIDPIPE_RETRY_DELAY_SECONDS, else 60 s."""
    value = (os.environ if environment is None else environment).get(layout.RETRY_DELAY_ENV)
    return timedelta(seconds=float(value) if value else DEFAULT_RETRY_DELAY_SECONDS)


_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_run_id(run_id: str) -> str:
    """A directory name for `run_id`: unsafe characters become '_', plus a short hash when any did."""
    safe = _UNSAFE_PATH_CHARACTERS.sub("_", run_id).strip("._") or "run"
    if safe == run_id:
        return safe
    return f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def default_work_root() -> str:
    """$VIDPIPE_HOME/work (~/.vidpipe/work)."""
    return os.path.join(layout.vidpipe_home(), "work")


class RunPaths:
    """Where one run keeps its outputs: <work_root>/runs/<sanitized run id>/..."""

    def __init__(self, work_root: str, run_id: str):
        self.root = Path(work_root).expanduser().resolve() / RUNS_DIR / sanitize_run_id(run_id)

    def data(self, split: str) -> Path:
        return self.root / "data" / split

    @property
    def transform_dir(self) -> Path:
        return self.data("train") / layout.TRANSFORM_DIR

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
        return self.root / MANIFEST_FILE


def string_list(value: object) -> list[str]:
    """A list param that may also arrive as one string: split on whitespace (shell quoting honoured)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


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


def stage_command(command: str, arguments: list[str]) -> list[str]:
    """``python -m vidpipe.apps.cli <command> arguments...``: stages get the CLI's quiet start-up and one-line
    errors."""
    if command not in STAGE_COMMANDS:
        raise ValueError(f"{command!r} is not a stage command ({', '.join(STAGE_COMMANDS)})")
    return [sys.executable, "-m", CLI_MODULE, command, *arguments]


def run_process(stage: str, command: list[str]) -> dict:
    """Runs `command`, logs its output line by line and returns the last JSON object it printed on stdout.

    Raises RuntimeError with the command, exit status and the end of its output when it fails.
    """
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


def run_stage(command: str, arguments: list[str], stage: str | None = None) -> dict:
    """Runs the stage ``vidpipe <command> arguments...`` (logged as `stage`) and returns its JSON report."""
    return run_process(stage or command, stage_command(command, arguments))


def scalars(document: dict) -> dict:
    """The top-level numbers, strings and booleans of a report (a small XCom)."""
    return {key: value for key, value in document.items()
            if value is None or isinstance(value, (str, int, float, bool))}


def read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def write_run_file(path: Path, text: str) -> None:
    """A run output of the DAG's own (gate.json, run.json), replaced atomically."""
    from vidpipe.outputs import write_text_atomically

    write_text_atomically(path, text, "dag")


def run_paths(params: dict, run_id: str) -> RunPaths:
    """The run's folders under the ``work_root`` param (else default_work_root()); ParameterError for a bad path."""
    work_root = checked_path(params["work_root"], "work_root") if params.get("work_root") else default_work_root()
    return RunPaths(str(work_root), run_id)


def corpus_dir(params: dict) -> Path:
    return checked_path(params.get("corpus_dir"), "corpus_dir", "dir")


def run_beam_options(params: dict) -> list[str]:
    return beam_options(params.get("beam_options"))


def ingest_arguments(params: dict, paths: RunPaths, split: str, labeled: bool) -> list[str]:
    """Arguments of `vidpipe ingest` for one split of the corpus; StageRefused when the corpus lacks its inputs.

    Splits other than train reuse the PCA fitted on train (--transform-dir).
    """
    corpus = corpus_dir(params)
    extra_options = run_beam_options(params)
    weights = None
    if params.get("backbone_weights"):
        weights = checked_path(params["backbone_weights"], "backbone_weights", "file")
    source = corpus / split
    if not source.is_dir():
        raise StageRefused(f"corpus {str(corpus)!r} has no {split}/ folder")
    arguments = ["--input", str(source), "--output", str(paths.data(split)),
                 "--max-frames", str(params["max_frames"]), "--backbone", params["backbone"]]
    if params.get("frame_size"):
        arguments += ["--frame-size", str(params["frame_size"])]
    if labeled:
        labels = corpus / layout.CORPUS_LABELS_FILE
        if not labels.is_file():
            raise StageRefused(f"corpus {str(corpus)!r} has no {layout.CORPUS_LABELS_FILE}")
        arguments += ["--labels", str(labels)]
    if split != "train":
        arguments += ["--transform-dir", str(paths.transform_dir)]
    if weights is not None:
        arguments += ["--backbone-weights", str(weights)]
    return arguments + extra_options


def ingest_split(params: dict, run_id: str, split: str, labeled: bool) -> dict:
    """Ingests corpus/<split>/ into the run's data/<split>; a corpus without unlabeled/ is no error."""
    paths = run_paths(params, run_id)
    if split == layout.UNLABELED_SPLIT and not (corpus_dir(params) / split).is_dir():
        log.info("no %s/ folder in the corpus: batch_predict will score the test split", split)
        return {"split": split, "data": None}
    report = run_stage("ingest", ingest_arguments(params, paths, split, labeled), stage=f"ingest {split}")
    return {"split": split, "data": str(paths.data(split)), **scalars(report)}


def labels_in(data_dir: Path) -> set[int]:
    """Label ids listed in an ingest output's label_stats/label_counts.csv (empty if absent)."""
    from vidpipe.label_stats import load_label_counts

    if not (data_dir / layout.LABEL_STATS_DIR / layout.LABEL_COUNTS_FILE).is_file():
        return set()
    return {label for label, _, _ in load_label_counts(str(data_dir))}


def labels_missing_from_train(paths: RunPaths) -> dict[str, list[int]]:
    """{validate|test: sorted label ids of that split that never occur in train}."""
    train_labels = labels_in(paths.data("train"))
    return {split: sorted(labels_in(paths.data(split)) - train_labels)
            for split in layout.LABELED_SPLITS if split != "train"}


def label_stats_arguments(params: dict, paths: RunPaths) -> list[str]:
    return ["--data", str(paths.data("train"))] + run_beam_options(params)


def label_stats(params: dict, run_id: str) -> dict:
    """Label vocabulary and class weights of the training records; warns of labels unseen in training."""
    paths = run_paths(params, run_id)
    report = run_stage("label-stats", label_stats_arguments(params, paths))
    unseen = labels_missing_from_train(paths)
    for split, labels in unseen.items():
        if labels:
            log.warning("labels %s of the %s split never occur in train", labels, split)
    return {**scalars(report), "labels_missing_from_train": unseen}


def train_arguments(params: dict, paths: RunPaths) -> list[str]:
    arguments = ["--data", str(paths.data("train")), "--validation-data", str(paths.data("validate")),
                 "--model", params["model"], "--train-dir", str(paths.model_dir), "--no-progress"]
    for override in string_list(params.get("model_overrides")):
        _refuse_line_breaks("model_overrides", override)
        arguments += ["--set", override]
    return arguments


def train(params: dict, run_id: str) -> dict:
    paths = run_paths(params, run_id)
    report = run_stage("train", train_arguments(params, paths))
    return {"model_dir": str(paths.model_dir), **scalars(report)}


def evaluate_arguments(params: dict, paths: RunPaths) -> list[str]:
    return ["--model-dir", str(paths.model_dir), "--data", str(paths.data("test")),
            "--output", str(paths.metrics), "--top-k", str(params["top_k"])]


def evaluate(params: dict, run_id: str) -> dict:
    paths = run_paths(params, run_id)
    run_stage("evaluate", evaluate_arguments(params, paths))
    return scalars(read_json(paths.metrics))


def gate_arguments(params: dict, run_id: str, paths: RunPaths) -> list[str]:
    return ["--run-id", run_id, "--dag-id", layout.PIPELINE_DAG_ID, "--model-name", params["model"],
            "--model-dir", str(paths.model_dir), "--metrics", str(paths.metrics),
            "--min-gap", str(params["min_gap"]), "--tolerance", str(params["tolerance"]),
            "--params", json.dumps(params, sort_keys=True, default=str)]


def gate(params: dict, run_id: str) -> dict:
    """Records run, model version, evaluation and decision in the catalog (by run id, so a repeat changes
    nothing); writes gate.json and run.json."""
    paths = run_paths(params, run_id)
    decision = run_stage("gate", gate_arguments(params, run_id, paths))
    if "blessed" not in decision:
        raise RuntimeError(f"gate printed no decision: {decision}")
    write_run_file(paths.gate_decision, json.dumps(decision, indent=2, sort_keys=True))
    write_manifest(paths, run_id, params, predicted_split=None, submission=None)
    log.info("gate: %s", decision.get("reason"))
    return scalars(decision)


def processed_videos(data_dir: Path) -> int:
    """How many videos an ingest output holds (its summary.json's "processed"; 0 without one)."""
    summary = data_dir / layout.SUMMARY_FILE
    return int(read_json(summary).get("processed", 0)) if summary.is_file() else 0


def prediction_split(paths: RunPaths) -> str:
    """unlabeled when its ingest produced any video, else test."""
    return layout.UNLABELED_SPLIT if processed_videos(paths.data(layout.UNLABELED_SPLIT)) else "test"


def predict_arguments(params: dict, paths: RunPaths, split: str) -> list[str]:
    return (["--data", str(paths.data(split)), "--model-dir", str(paths.model_dir),
             "--output", str(paths.submission), "--top-k", str(params["top_k"])] + run_beam_options(params))


def batch_predict(params: dict, run_id: str) -> dict:
    """Scores unlabeled/ (else the test split) with this run's model once the gate has blessed it.

    A model that was not blessed is not served (NothingToDo); the champion is not used on this run's records
    either, because those carry this run's PCA projection and the champion was trained on its own.
    """
    paths = run_paths(params, run_id)
    decision = read_json(paths.gate_decision)
    if not decision["blessed"]:
        raise NothingToDo(f"no predictions: {decision.get('reason')}")
    split = prediction_split(paths)
    report = run_stage("predict", predict_arguments(params, paths, split), stage="batch_predict")
    write_manifest(paths, run_id, params, predicted_split=split, submission=str(paths.submission))
    return {"submission": str(paths.submission), "split": split, **scalars(report)}


def manifest(paths: RunPaths, run_id: str, params: dict, **outputs: object) -> dict:
    """run.json's content: where everything of this run is, for people and for `vidpipe demo`."""
    splits = (*layout.LABELED_SPLITS, layout.UNLABELED_SPLIT)
    return {
        "dag_id": layout.PIPELINE_DAG_ID,
        "run_id": run_id,
        "run_dir": str(paths.root),
        "params": params,
        "data": {split: str(paths.data(split)) for split in splits if paths.data(split).is_dir()},
        "model_dir": str(paths.model_dir),
        "tensorboard_logs": str(paths.model_dir / layout.LOG_DIR),
        "metrics": str(paths.metrics),
        "gate": read_json(paths.gate_decision),
        "catalog_url": os.environ.get(layout.CATALOG_URL_ENV) or None,
        "written_at": datetime.now(UTC).isoformat(),
        **outputs,
    }


def write_manifest(paths: RunPaths, run_id: str, params: dict, **outputs: object) -> None:
    write_run_file(paths.manifest, json.dumps(manifest(paths, run_id, params, **outputs), indent=2,
                                              sort_keys=True, default=str))
