"""vidpipe on Airflow: raw video corpus -> records -> trained model -> gate -> Kaggle submission.

    ingest_train ─┬─ ingest_validate ─┬─ label_stats ─ train ─ evaluate ─ gate ─┬─ batch_predict
                  ├─ ingest_test ─────┘                                        │
                  └─ ingest_unlabeled ─────────────────────────────────────────┘

Every task runs one vidpipe stage as a subprocess (``python -m <module> ...``), so parsing this file
imports only the Airflow SDK and the standard library. Stage output is streamed into the task log;
the JSON a stage prints on stdout becomes the task's XCom. All outputs of a run live under
``<work_root>/runs/<run id>/`` (data/<split>, model, metrics.json, gate.json, submission.csv,
run.json), so runs never overwrite each other, and the catalog is written by run id, so repeating a
task of a run (retry, clear) leaves the catalog as it was.

Environment read by the tasks: VIDPIPE_CATALOG_URL (catalog database, passed on unchanged),
VIDPIPE_HOME (default work_root is $VIDPIPE_HOME/work, else ~/.vidpipe/work). Read when the file is
parsed: VIDPIPE_GPU_POOL (pool of the train task, default "gpu"), VIDPIPE_RETRY_DELAY_SECONDS (first
retry delay, default 60; retries back off exponentially).
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

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

log = logging.getLogger("vidpipe.dags.pipeline")

DAG_ID = "vidpipe_pipeline"
MODEL_NAMES = ["logistic", "moe", "frame_logistic", "dbof", "lstm"]
LABELED_SPLITS = ("train", "validate", "test")
UNLABELED_SPLIT = "unlabeled"
LABELS_FILE = "labels.csv"
TRANSFORM_SUBDIR = "feature_transform"
GPU_POOL = os.environ.get("VIDPIPE_GPU_POOL", "gpu")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("VIDPIPE_RETRY_DELAY_SECONDS", "60")))
PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_TAIL_LINES = 40

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


def _context() -> tuple[dict, str, RunPaths]:
    """(params, run id, run paths) of the running task."""
    context = get_current_context()
    params = dict(context["params"])
    run_id = context["run_id"]
    return params, run_id, RunPaths(params.get("work_root") or default_work_root(), run_id)


def _corpus(params: dict) -> Path:
    corpus = Path(str(params["corpus_dir"])).expanduser().resolve()
    if not corpus.is_dir():
        raise AirflowFailException(f"corpus_dir {str(corpus)!r} is not a directory")
    return corpus


def _string_list(value: object) -> list[str]:
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


def _last_json_document(text: str) -> dict:
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
    return _last_json_document("".join(stdout))


def _scalars(document: dict) -> dict:
    """The top-level numbers, strings and booleans of a report (a small XCom)."""
    return {key: value for key, value in document.items()
            if value is None or isinstance(value, (str, int, float, bool))}


def _ingest(split: str, labeled: bool) -> dict:
    params, _, paths = _context()
    corpus = _corpus(params)
    source = corpus / split
    if not source.is_dir():
        if split == UNLABELED_SPLIT:
            log.info("no %s/ folder in %s: batch_predict will score the test split", split, corpus)
            return {"split": split, "data": None}
        raise AirflowFailException(f"corpus {str(corpus)!r} has no {split}/ folder")
    arguments = ["--input", str(source), "--output", str(paths.data(split)),
                 "--max-frames", str(params["max_frames"]), "--frame-size", str(params["frame_size"])]
    if labeled:
        labels = corpus / LABELS_FILE
        if not labels.is_file():
            raise AirflowFailException(f"corpus {str(corpus)!r} has no {LABELS_FILE}")
        arguments += ["--labels", str(labels)]
    if split != "train":
        arguments += ["--transform-dir", str(paths.transform_dir)]
    if params.get("backbone_weights"):
        arguments += ["--backbone-weights", str(params["backbone_weights"])]
    report = run_stage(f"ingest {split}", "beam_pipelines.ingest", arguments + _string_list(params["beam_options"]))
    return {"split": split, "data": str(paths.data(split)), **_scalars(report)}


def _read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _labels_in(data_dir: Path) -> set[int]:
    """Label ids listed in an ingest output's label_stats/label_counts.csv (empty if absent)."""
    counts = data_dir / "label_stats" / "label_counts.csv"
    if not counts.is_file():
        return set()
    rows = counts.read_text().splitlines()[1:]
    return {int(row.split(",")[0]) for row in rows if row.strip()}


def _processed_videos(data_dir: Path) -> int:
    summary = data_dir / "summary.json"
    return int(_read_json(summary).get("processed", 0)) if summary.is_file() else 0


def _write_manifest(paths: RunPaths, run_id: str, params: dict, **outputs: object) -> None:
    """run.json: where everything of this run is, for people and for `vidpipe demo`."""
    splits = (*LABELED_SPLITS, UNLABELED_SPLIT)
    manifest = {
        "dag_id": DAG_ID,
        "run_id": run_id,
        "run_dir": str(paths.root),
        "params": params,
        "data": {split: str(paths.data(split)) for split in splits if paths.data(split).is_dir()},
        "model_dir": str(paths.model_dir),
        "tensorboard_logs": str(paths.model_dir / "logs"),
        "metrics": str(paths.metrics),
        "gate": _read_json(paths.gate_decision),
        "catalog_url": os.environ.get("VIDPIPE_CATALOG_URL") or None,
        "written_at": datetime.now(UTC).isoformat(),
        **outputs,
    }
    paths.manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


DOC_MD = __doc__

with DAG(
    dag_id=DAG_ID,
    description="raw videos -> YouTube-8M records -> model -> evaluation gate -> batch predictions",
    doc_md=DOC_MD,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["vidpipe", "youtube-8m", "ml"],
    default_args={
        "owner": "vidpipe",
        "retries": 2,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
    },
    params={
        "corpus_dir": Param(
            type="string", minLength=1, title="Corpus folder",
            description="Folder with train/, validate/ and test/ subfolders of videos, a labels.csv "
                        "(VideoId,Labels: space-separated label ids) for them, and optionally unlabeled/ "
                        "(videos to predict)."),
        "work_root": Param(
            None, type=["null", "string"], title="Work folder",
            description="Outputs go to <work_root>/runs/<run id>/. Empty: $VIDPIPE_HOME/work (~/.vidpipe/work)."),
        "model": Param("moe", enum=MODEL_NAMES, title="Model", description="Registered model to train."),
        "model_overrides": Param(
            [], type=["array", "string"], items={"type": "string"}, title="Config overrides",
            description="key=value overrides of the training config, e.g. model.num_mixtures=2, "
                        "train.max_steps=200, input.batch_size=32 (a list, or one whitespace-separated string)."),
        "min_gap": Param(0.5, type="number", minimum=0, maximum=1, title="Minimum GAP",
                         description="GAP@20 on the test split that a model must reach to be blessed."),
        "tolerance": Param(0.01, type="number", minimum=0, maximum=1, title="Tolerance",
                           description="How far below the champion's GAP a candidate may fall and still be blessed."),
        "max_frames": Param(300, type="integer", minimum=1, title="Max frames",
                            description="Frames kept per video (decoded at 1 frame per second)."),
        "frame_size": Param(299, type="integer", minimum=75, title="Frame size",
                            description="Frames are resized to this square size for InceptionV3 (299 for real use)."),
        "backbone_weights": Param(
            None, type=["null", "string"], title="InceptionV3 weights",
            description="Weights file for the feature extractor; empty: random initialisation (with a warning)."),
        "beam_options": Param(
            [], type=["array", "string"], items={"type": "string"}, title="Beam options",
            description="Extra Beam pipeline options for ingest, label_stats and batch_predict, "
                        "e.g. --direct_num_workers=2 --direct_running_mode=multi_processing."),
        "top_k": Param(20, type="integer", minimum=1, title="Top k",
                       description="Predictions per video in metrics and in the submission."),
    },
) as dag:

    @task
    def ingest_train() -> dict:
        """Decode and featurize train/, fitting the PCA that the other splits reuse."""
        return _ingest("train", labeled=True)

    @task
    def ingest_validate() -> dict:
        return _ingest("validate", labeled=True)

    @task
    def ingest_test() -> dict:
        return _ingest("test", labeled=True)

    @task
    def ingest_unlabeled() -> dict:
        """Videos to predict, if the corpus has an unlabeled/ folder."""
        return _ingest(UNLABELED_SPLIT, labeled=False)

    @task
    def label_stats() -> dict:
        """Label vocabulary and class weights of the training records; warns of labels unseen in training."""
        params, _, paths = _context()
        report = run_stage("label_stats", "beam_pipelines.label_stats_pipeline",
                           ["--data", str(paths.data("train"))] + _string_list(params["beam_options"]))
        train_labels = _labels_in(paths.data("train"))
        unseen = {split: sorted(_labels_in(paths.data(split)) - train_labels) for split in ("validate", "test")}
        for split, labels in unseen.items():
            if labels:
                log.warning("labels %s of the %s split never occur in train", labels, split)
        return {**_scalars(report), "labels_missing_from_train": unseen}

    @task(pool=GPU_POOL, queue="gpu")
    def train() -> dict:
        params, _, paths = _context()
        arguments = ["--data", str(paths.data("train")), "--validation-data", str(paths.data("validate")),
                     "--model", params["model"], "--train-dir", str(paths.model_dir), "--no-progress"]
        for override in _string_list(params["model_overrides"]):
            arguments += ["--set", override]
        report = run_stage("train", "models.train_cli", arguments)
        return {"model_dir": str(paths.model_dir), **_scalars(report)}

    @task
    def evaluate() -> dict:
        params, _, paths = _context()
        run_stage("evaluate", "vidpipe.evaluate",
                  ["--model-dir", str(paths.model_dir), "--data", str(paths.data("test")),
                   "--output", str(paths.metrics), "--top-k", str(params["top_k"])])
        return _scalars(_read_json(paths.metrics))

    @task
    def gate() -> dict:
        """Records run, model version, evaluation and decision in the catalog; promotes a blessed model."""
        params, run_id, paths = _context()
        decision = run_stage("gate", "vidpipe.gate_cli",
                             ["--run-id", run_id, "--dag-id", DAG_ID, "--model-name", params["model"],
                              "--model-dir", str(paths.model_dir), "--metrics", str(paths.metrics),
                              "--min-gap", str(params["min_gap"]), "--tolerance", str(params["tolerance"]),
                              "--params", json.dumps(params, sort_keys=True, default=str)])
        if "blessed" not in decision:
            raise RuntimeError(f"gate printed no decision: {decision}")
        paths.gate_decision.write_text(json.dumps(decision, indent=2, sort_keys=True))
        _write_manifest(paths, run_id, params, predicted_split=None, submission=None)
        log.info("gate: %s", decision.get("reason"))
        return _scalars(decision)

    @task
    def batch_predict() -> dict:
        """Scores unlabeled/ (else the test split) with this run's model once the gate has blessed it.

        A model that was not blessed is not served; the champion is not used on this run's records
        either, because those carry this run's PCA projection and the champion was trained on its own.
        """
        params, run_id, paths = _context()
        decision = _read_json(paths.gate_decision)
        if not decision["blessed"]:
            raise AirflowSkipException(f"no predictions: {decision.get('reason')}")
        split = UNLABELED_SPLIT if _processed_videos(paths.data(UNLABELED_SPLIT)) else "test"
        report = run_stage("batch_predict", "beam_pipelines.predict",
                           ["--data", str(paths.data(split)), "--model-dir", str(paths.model_dir),
                            "--output", str(paths.submission), "--top-k", str(params["top_k"])]
                           + _string_list(params["beam_options"]))
        _write_manifest(paths, run_id, params, predicted_split=split, submission=str(paths.submission))
        return {"submission": str(paths.submission), "split": split, **_scalars(report)}

    train_ingest = ingest_train()
    held_out = [ingest_validate(), ingest_test()]
    unlabeled = ingest_unlabeled()
    stats = label_stats()
    decided = gate()
    train_ingest >> [*held_out, unlabeled]
    held_out >> stats >> train() >> evaluate() >> decided
    [decided, unlabeled] >> batch_predict()
