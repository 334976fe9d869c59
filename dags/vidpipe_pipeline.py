"""vidpipe on Airflow: raw video corpus -> records -> trained model -> gate -> Kaggle submission.

    ingest_train ─┬─ ingest_validate ─┬─ label_stats ─ train ─ evaluate ─ gate ─┬─ batch_predict
                  ├─ ingest_test ─────┘                                        │
                  └─ ingest_unlabeled ─────────────────────────────────────────┘

This file only wires tasks: each task is one call of a function of vidpipe.apps.orchestration, which runs
one vidpipe stage as a subprocess (``python -m vidpipe.apps.cli <command> ...``), so parsing this file imports
only the Airflow SDK, the standard library, vidpipe.layout and vidpipe.apps.orchestration. Stage output is
streamed into the task log; the JSON a stage prints on stdout becomes the task's XCom. All outputs of a run
live under ``<work_root>/runs/<run id>/`` (data/<split>, model, metrics.json, gate.json, submission.csv,
run.json), so runs never overwrite each other, and the catalog is written by run id, so repeating a
task of a run (retry, clear) leaves the catalog as it was.

Environment read by the tasks: VIDPIPE_CATALOG_URL (catalog database, passed on unchanged),
VIDPIPE_HOME (default work_root is $VIDPIPE_HOME/work, else ~/.vidpipe/work). Read when the file is
parsed: VIDPIPE_GPU_POOL (pool of the train task, default "gpu"), VIDPIPE_RETRY_DELAY_SECONDS (first
retry delay, default 60; retries back off exponentially).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from vidpipe.apps import orchestration
from vidpipe.layout import BACKBONE_NAMES, MODEL_NAMES, PIPELINE_DAG_ID, UNLABELED_SPLIT


def _run(step, *arguments):
    """Calls ``step(params, run_id, *arguments)`` for the running task: refused input fails the task without
    retries, nothing to do skips it."""
    context = get_current_context()
    try:
        return step(dict(context["params"]), context["run_id"], *arguments)
    except orchestration.StageRefused as error:
        raise AirflowFailException(str(error)) from None
    except orchestration.NothingToDo as error:
        raise AirflowSkipException(str(error)) from None


with DAG(
    dag_id=PIPELINE_DAG_ID,
    description="raw videos -> YouTube-8M records -> model -> evaluation gate -> batch predictions",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["vidpipe", "youtube-8m", "ml"],
    default_args={
        "owner": "vidpipe",
        "retries": 2,
        "retry_delay": orchestration.first_retry_delay(),
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
        "model": Param("moe", enum=list(MODEL_NAMES), title="Model", description="Registered model to train."),
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
            "inception_v3", enum=list(BACKBONE_NAMES), title="CNN backbone",
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
        return _run(orchestration.ingest_split, "train", True)

    @task
    def ingest_validate() -> dict:
        return _run(orchestration.ingest_split, "validate", True)

    @task
    def ingest_test() -> dict:
        return _run(orchestration.ingest_split, "test", True)

    @task
    def ingest_unlabeled() -> dict:
        """Videos to predict, if the corpus has an unlabeled/ folder."""
        return _run(orchestration.ingest_split, UNLABELED_SPLIT, False)

    @task
    def label_stats() -> dict:
        """Label vocabulary and class weights of the training records; warns of labels unseen in training."""
        return _run(orchestration.label_stats)

    @task(pool=orchestration.gpu_pool(), queue="gpu")
    def train() -> dict:
        return _run(orchestration.train)

    @task
    def evaluate() -> dict:
        return _run(orchestration.evaluate)

    @task
    def gate() -> dict:
        """Records run, model version, evaluation and decision in the catalog; promotes a blessed model."""
        return _run(orchestration.gate)

    @task
    def batch_predict() -> dict:
        """Scores unlabeled/ (else the test split) with this run's model once the gate has blessed it."""
        return _run(orchestration.batch_predict)

    train_ingest = ingest_train()
    held_out = [ingest_validate(), ingest_test()]
    unlabeled = ingest_unlabeled()
    stats = label_stats()
    decided = gate()
    train_ingest >> [*held_out, unlabeled]
    held_out >> stats >> train() >> evaluate() >> decided
    [decided, unlabeled] >> batch_predict()
