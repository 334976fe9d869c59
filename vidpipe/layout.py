"""The one owner of vidpipe's names: on-disk layout, environment variables, DAG ids and model names.

Standard library only, so that DAG files, the CLI and the Beam and Keras code all import the same names.

Ingest output (a records folder)::

    <data>/frame/part-*.tfrecord        tf.train.SequenceExample per video
    <data>/video/part-*.tfrecord        tf.train.Example per video
    <data>/label_stats/                 label counts and class weights (vidpipe.label_stats), transform/
    <data>/feature_transform/           the fitted tf.Transform PCA (train split)
    <data>/feature_space.json           the space the records live in (vidpipe.feature_space)
    <data>/quarantine.csv               path,reason of every input that was not processed
    <data>/summary.json                 counts, frames, timings and warnings

Training output (a train dir)::

    <train_dir>/config.json  checkpoints/  logs/  export/<step>/  export/latest
"""

from __future__ import annotations

import os

# records folder
FRAME_DIR = "frame"
VIDEO_DIR = "video"
RECORD_SUFFIX = ".tfrecord"
LEVELS = (FRAME_DIR, VIDEO_DIR)
LABEL_STATS_DIR = "label_stats"
LABEL_COUNTS_FILE = "label_counts.csv"
LABEL_STATS_FILE = "label_stats.json"
LABEL_STATS_TRANSFORM_DIR = "transform"
TRANSFORM_DIR = "feature_transform"
TRANSFORM_INFO_FILE = "vidpipe_feature_transform.json"
FEATURE_SPACE_FILE = "feature_space.json"
QUARANTINE_FILE = "quarantine.csv"
SUMMARY_FILE = "summary.json"
INGEST_OUTPUT_NAMES = frozenset({FRAME_DIR, VIDEO_DIR, LABEL_STATS_DIR, TRANSFORM_DIR, FEATURE_SPACE_FILE,
                                 QUARANTINE_FILE, SUMMARY_FILE})

# train dir
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
EXPORT_DIR = "export"
LATEST_EXPORT = "latest"
EXPORT_METADATA = "vidpipe_export.json"
SERVING_SIGNATURE = "serving_default"

# corpus folder read by the DAG and the demo
CORPUS_LABELS_FILE = "labels.csv"
LABELED_SPLITS = ("train", "validate", "test")
UNLABELED_SPLIT = "unlabeled"

# environment
HOME_ENV = "VIDPIPE_HOME"
CATALOG_URL_ENV = "VIDPIPE_CATALOG_URL"
GPU_POOL_ENV = "VIDPIPE_GPU_POOL"
RETRY_DELAY_ENV = "VIDPIPE_RETRY_DELAY_SECONDS"
DEBUG_ENV = "VIDPIPE_DEBUG"
VERBOSE_ENV = "VIDPIPE_VERBOSE"

# Airflow
PIPELINE_DAG_ID = "vidpipe_pipeline"

# frame CNNs (beam_pipelines.features.BACKBONES holds exactly these; the first is the default)
BACKBONE_NAMES = ("inception_v3", "efficientnet_lite0")

# models of the registry (models.registry.MODELS must hold exactly these; a test keeps them equal)
VIDEO_LEVEL_MODELS = ("logistic", "moe")
FRAME_LEVEL_MODELS = ("frame_logistic", "dbof", "lstm")
MODEL_NAMES = VIDEO_LEVEL_MODELS + FRAME_LEVEL_MODELS
MODEL_ALIASES = {"rnn": "lstm"}


def record_pattern(data_dir: str, level: str) -> str:
    """``<data_dir>/<frame|video>/*.tfrecord``; ValueError for another level."""
    check_level(level)
    return f"{str(data_dir).rstrip('/')}/{level}/*{RECORD_SUFFIX}"


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    return level


def vidpipe_home() -> str:
    """$VIDPIPE_HOME, else ~/.vidpipe."""
    return os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".vidpipe")
