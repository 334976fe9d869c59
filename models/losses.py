"""Sigmoid cross-entropy on probabilities, optionally class weighted, and the label statistics it uses.

Label statistics come from the ingest layout::

    <data>/label_stats/label_counts.csv   label,count,weight   (weight w_i = N / (C * n_i))
    <data>/label_stats/label_stats.json   {"num_videos": N, "num_classes": C, "max_label": int}

"num_classes" in the JSON counts distinct labels; the model's output size is ``max_label + 1``.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import tensorflow as tf
from keras import ops

EPSILON = 1e-5
LABEL_STATS_DIR = "label_stats"
LABEL_COUNTS_FILE = "label_counts.csv"
LABEL_STATS_FILE = "label_stats.json"


def cross_entropy(labels, probabilities, class_weights=None):
    """labels, probabilities [B, C] -> scalar: per-class binary cross-entropy summed over classes,
    averaged over the batch (the starter's CrossEntropyLoss, with its epsilon 1e-5).

    class_weights [C], when given, scales the positive term of each class:
    ``-(w_c * y log(p + eps) + (1 - y) log(1 - p + eps))``, so rare classes get as much push
    towards recall as frequent ones without also being pushed harder towards 0.
    """
    probabilities = ops.cast(probabilities, "float32")
    labels = ops.cast(labels, "float32")
    positive = labels * ops.log(probabilities + EPSILON)
    if class_weights is not None:
        positive = positive * ops.cast(class_weights, "float32")[None, :]
    negative = (1.0 - labels) * ops.log(1.0 - probabilities + EPSILON)
    return ops.mean(ops.sum(-(positive + negative), axis=1))


class CrossEntropyLoss:
    """Callable ``(labels [B, C], probabilities [B, C]) -> scalar`` with fixed class weights (or none)."""

    def __init__(self, class_weights: np.ndarray | None = None):
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)

    def __call__(self, labels, probabilities):
        return cross_entropy(labels, probabilities, self.class_weights)


def _label_stats_path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, LABEL_STATS_DIR, name)


def load_label_stats(data_dir: str) -> dict:
    """The parsed ``<data>/label_stats/label_stats.json``."""
    path = _label_stats_path(data_dir, LABEL_STATS_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found; run ingest first (it writes label_stats/)")
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def load_num_classes(data_dir: str) -> int:
    """Output size of the classifiers: ``max_label + 1`` from label_stats.json."""
    stats = load_label_stats(data_dir)
    if "max_label" not in stats or stats["max_label"] is None:
        raise ValueError(f"{_label_stats_path(data_dir, LABEL_STATS_FILE)} has no 'max_label'")
    return int(stats["max_label"]) + 1


def load_class_weights(data_dir: str, num_classes: int, power: float = 1.0) -> np.ndarray:
    """Per-class weights [C] float32 from label_counts.csv, raised to ``power``.

    Uses the file's ``weight`` column; rows without one get ``N / (C * n_i)`` with N the number of
    videos (label_stats.json, else the sum of counts) and C the number of labels with a count.
    Classes absent from the file, or with count 0, get weight 1.
    """
    path = _label_stats_path(data_dir, LABEL_COUNTS_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found; run ingest first (it writes label_stats/)")
    with tf.io.gfile.GFile(path) as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"label", "count"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns label,count[,weight], got {list(rows[0])}")
    counts = {int(row["label"]): int(float(row["count"])) for row in rows}
    too_large = sorted(label for label in counts if label >= num_classes or label < 0)
    if too_large:
        raise ValueError(f"{path}: labels {too_large[:10]} are outside [0, {num_classes})")
    seen = {label: count for label, count in counts.items() if count > 0}
    try:
        num_videos = int(load_label_stats(data_dir)["num_videos"])
    except (FileNotFoundError, KeyError):
        num_videos = sum(seen.values())
    weights = np.ones(num_classes, np.float64)
    for row in rows:
        label, count = int(row["label"]), int(float(row["count"]))
        if count <= 0:
            continue
        given = (row.get("weight") or "").strip()
        weights[label] = float(given) if given else num_videos / (len(seen) * count)
    if np.any(weights <= 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f"{path}: class weights must be finite and positive")
    return (weights ** power).astype(np.float32)
