"""vidpipe on Airflow: raw video corpus -> records -> trained model -> gate -> Kaggle submission.

    ingest_train ─┬─ ingest_validate ─┬─ label_stats ─ train ─ evaluate ─ gate ─┬─ batch_predict
                  ├─ ingest_test ─────┘                                        │
                  └─ ingest_unlabeled ─────────────────────────────────────────┘

Every task runs one vidpipe stage as a subprocess (``python -m <module> ...``), so parsing this file
imports only the Airflow SDK, the standard library and vidpipe.apps.orchestration. Stage output is streamed into the task log;
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

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from vidpipe.apps.orchestration import (
    ParameterError,
    RunPaths,
    beam_options,
    checked_path,
    default_work_root,
    read_json,
    run_stage,
    scalars,
    string_list,
)

log = logging.getLogger("vidpipe.dags.pipeline")

DAG_ID = "vidpipe_pipeline"
MODEL_NAMES = ["logistic", "moe", "frame_logistic", "dbof", "lstm"]
BACKBONES = ["inception_v3", "efficientnet_lite0"]
LABELED_SPLITS = ("train", "validate", "test")
UNLABELED_SPLIT = "unlabeled"
LABELS_FILE = "labels.csv"
GPU_POOL = os.environ.get("VIDPIPE_GPU_POOL", "gpu")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("VIDPIPE_RETRY_DELAY_SECONDS", "60")))

def _checked(check, *args):
    """Runs a parameter check; a refused parameter fails the task without retries."""
    try:
        return check(*args)
    except ParameterError as error:
        raise AirflowFailException(str(error)) from None


def _context() -> tuple[dict, str, RunPaths]:
    """(params, run id, run paths) of the running task."""
    context = get_current_context()
    params = dict(context["params"])
    run_id = context["run_id"]
    work_root = _checked(checked_path, params["work_root"], "work_root") if params.get("work_root") else None
    return params, run_id, RunPaths(str(work_root or default_work_root()), run_id)


def _corpus(params: dict) -> Path:
    return _checked(checked_path, params["corpus_dir"], "corpus_dir", "dir")


def _beam_options(params: dict) -> list[str]:
    return _checked(beam_options, params.get("beam_options"))


def _write_text(path: Path, text: str) -> None:
    """A run output of the DAG's own (gate.json, run.json), replaced atomically."""
    from vidpipe.outputs import write_text_atomically

    write_text_atomically(path, text, "dag")


def _ingest(split: str, labeled: bool) -> dict:
    params, _, paths = _context()
    corpus = _corpus(params)
    extra_options = _beam_options(params)
    weights = None
    if params.get("backbone_weights"):
        weights = _checked(checked_path, params["backbone_weights"], "backbone_weights", "file")
    source = corpus / split
    if not source.is_dir():
        if split == UNLABELED_SPLIT:
            log.info("no %s/ folder in %s: batch_predict will score the test split", split, corpus)
            return {"split": split, "data": None}
        raise AirflowFailException(f"corpus {str(corpus)!r} has no {split}/ folder")
    arguments = ["--input", str(source), "--output", str(paths.data(split)),
                 "--max-frames", str(params["max_frames"]), "--backbone", params["backbone"]]
    if params.get("frame_size"):
        arguments += ["--frame-size", str(params["frame_size"])]
    if labeled:
        labels = corpus / LABELS_FILE
        if not labels.is_file():
            raise AirflowFailException(f"corpus {str(corpus)!r} has no {LABELS_FILE}")
        arguments += ["--labels", str(labels)]
    if split != "train":
        arguments += ["--transform-dir", str(paths.transform_dir)]
    if weights is not None:
        arguments += ["--backbone-weights", str(weights)]
    report = run_stage(f"ingest {split}", "beam_pipelines.ingest", arguments + extra_options)
    return {"split": split, "data": str(paths.data(split)), **scalars(report)}


def _labels_in(data_dir: Path) -> set[int]:
    """Label ids listed in an ingest output's label_stats/label_counts.csv (empty if absent)."""
    counts = data_dir / "label_stats" / "label_counts.csv"
    if not counts.is_file():
        return set()
    rows = counts.read_text().splitlines()[1:]
    return {int(row.split(",")[0]) for row in rows if row.strip()}


def _processed_videos(data_dir: Path) -> int:
    summary = data_dir / "summary.json"
    return int(read_json(summary).get("processed", 0)) if summary.is_file() else 0


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
        "gate": read_json(paths.gate_decision),
        "catalog_url": os.environ.get("VIDPIPE_CATALOG_URL") or None,
        "written_at": datetime.now(UTC).isoformat(),
        **outputs,
    }
    _write_text(paths.manifest, json.dumps(manifest, indent=2, sort_keys=True, default=str))


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
        "backbone": Param(
            "inception_v3", enum=BACKBONES, title="CNN backbone",
            description="inception_v3: YouTube-8M's 2048-d pool_3 features (random init without weights); "
                        "efficientnet_lite0: 1280-d features with the packaged real ImageNet weights."),
        "frame_size": Param(None, type=["null", "integer"], minimum=75, title="Frame size",
                            description="Square CNN input size; empty: the backbone's own (299 / 224)."),
        "backbone_weights": Param(
            None, type=["null", "string"], title="InceptionV3 weights",
            description="Weights file for the backbone; empty: InceptionV3 is randomly initialised (with a "
                        "warning), EfficientNet-Lite0 uses its packaged ImageNet weights."),
        "beam_options": Param(
            [], type=["array", "string"], items={"type": "string"}, title="Beam options",
            description="Extra Beam pipeline options for ingest, label_stats and batch_predict, each --name=value "
                        "or --name, e.g. --direct_num_workers=2 --direct_running_mode=multi_processing. Only "
                        "options that tune the runner are accepted (vidpipe.apps.orchestration.BEAM_OPTION_VALUES); "
                        "stage options such as --output are refused."),
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
                           ["--data", str(paths.data("train"))] + _beam_options(params))
        train_labels = _labels_in(paths.data("train"))
        unseen = {split: sorted(_labels_in(paths.data(split)) - train_labels) for split in ("validate", "test")}
        for split, labels in unseen.items():
            if labels:
                log.warning("labels %s of the %s split never occur in train", labels, split)
        return {**scalars(report), "labels_missing_from_train": unseen}

    @task(pool=GPU_POOL, queue="gpu")
    def train() -> dict:
        params, _, paths = _context()
        arguments = ["--data", str(paths.data("train")), "--validation-data", str(paths.data("validate")),
                     "--model", params["model"], "--train-dir", str(paths.model_dir), "--no-progress"]
        for override in string_list(params["model_overrides"]):
            arguments += ["--set", override]
        report = run_stage("train", "vidpipe.apps.train_cli", arguments)
        return {"model_dir": str(paths.model_dir), **scalars(report)}

    @task
    def evaluate() -> dict:
        params, _, paths = _context()
        run_stage("evaluate", "vidpipe.apps.evaluate",
                  ["--model-dir", str(paths.model_dir), "--data", str(paths.data("test")),
                   "--output", str(paths.metrics), "--top-k", str(params["top_k"])])
        return scalars(read_json(paths.metrics))

    @task
    def gate() -> dict:
        """Records run, model version, evaluation and decision in the catalog; promotes a blessed model."""
        params, run_id, paths = _context()
        decision = run_stage("gate", "vidpipe.apps.gate_cli",
                             ["--run-id", run_id, "--dag-id", DAG_ID, "--model-name", params["model"],
                              "--model-dir", str(paths.model_dir), "--metrics", str(paths.metrics),
                              "--min-gap", str(params["min_gap"]), "--tolerance", str(params["tolerance"]),
                              "--params", json.dumps(params, sort_keys=True, default=str)])
        if "blessed" not in decision:
            raise RuntimeError(f"gate printed no decision: {decision}")
        _write_text(paths.gate_decision, json.dumps(decision, indent=2, sort_keys=True))
        _write_manifest(paths, run_id, params, predicted_split=None, submission=None)
        log.info("gate: %s", decision.get("reason"))
        return scalars(decision)

    @task
    def batch_predict() -> dict:
        """Scores unlabeled/ (else the test split) with this run's model once the gate has blessed it.

        A model that was not blessed is not served; the champion is not used on this run's records
        either, because those carry this run's PCA projection and the champion was trained on its own.
        """
        params, run_id, paths = _context()
        decision = read_json(paths.gate_decision)
        if not decision["blessed"]:
            raise AirflowSkipException(f"no predictions: {decision.get('reason')}")
        split = UNLABELED_SPLIT if _processed_videos(paths.data(UNLABELED_SPLIT)) else "test"
        report = run_stage("batch_predict", "beam_pipelines.predict",
                           ["--data", str(paths.data(split)), "--model-dir", str(paths.model_dir),
                            "--output", str(paths.submission), "--top-k", str(params["top_k"])]
                           + _beam_options(params))
        _write_manifest(paths, run_id, params, predicted_split=split, submission=str(paths.submission))
        return {"submission": str(paths.submission), "split": split, **scalars(report)}

    train_ingest = ingest_train()
    held_out = [ingest_validate(), ingest_test()]
    unlabeled = ingest_unlabeled()
    stats = label_stats()
    decided = gate()
    train_ingest >> [*held_out, unlabeled]
    held_out >> stats >> train() >> evaluate() >> decided
    [decided, unlabeled] >> batch_predict()
