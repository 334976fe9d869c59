"""The one owner of label statistics: their files, the class-weight definition, reading and writing.

An ingest output holds them under ``<data>/label_stats/``::

    label_counts.csv   label,count,weight    one row per label that occurs in the training split
    label_stats.json   {"num_videos", "num_classes", "max_label", "num_label_occurrences"}

``count`` n_i is the number of videos carrying label i. The class weight of label i is

    w_i = N / (C * n_i)

with N the number of label occurrences (the sum of n_i over all labels) and C the number of labels with
n_i > 0 (the re-balancing weight of the YouTube-8M TF2 notebook), so the weights average to 1 over the
training labels. "num_classes" in the JSON counts those distinct labels; a model's output size is
``max_label + 1``.

Numpy and the standard library only; ``tf.io.gfile`` is imported lazily for remote (``scheme://``) paths.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile

import numpy as np

from vidpipe.layout import LABEL_COUNTS_FILE, LABEL_STATS_DIR, LABEL_STATS_FILE
from vidpipe.outputs import is_remote

__all__ = ["LABEL_COUNTS_FILE", "LABEL_STATS_DIR", "LABEL_STATS_FILE", "class_weight", "class_weight_rows",
           "load_class_weights", "load_label_counts", "load_label_stats", "load_num_classes", "write_label_stats"]

COUNTS_HEADER = "label,count,weight"


def class_weight(count: int, total: int, num_classes: int) -> float:
    """``w_i = N / (C * n_i)``: n_i = ``count``, N = ``total`` label occurrences, C = ``num_classes`` seen."""
    return total / (num_classes * count)


def class_weight_rows(counts: dict[int, int]) -> list[tuple[int, int, float]]:
    """{label: n_i} -> [(label, n_i, w_i)] sorted by label; labels with n_i <= 0 get no row."""
    seen = {label: count for label, count in counts.items() if count > 0}
    total = sum(seen.values())
    return [(label, count, class_weight(count, total, len(seen))) for label, count in sorted(seen.items())]


def _exists(path: str) -> bool:
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def _read_text(path: str) -> str:
    if not _exists(path):
        raise FileNotFoundError(f"{path} not found; run ingest first (it writes {LABEL_STATS_DIR}/)")
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as handle:
            return handle.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` (locally through a temporary file and a rename)."""
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(text)
        return
    handle, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _makedirs(path: str) -> None:
    if is_remote(path):
        import tensorflow as tf

        tf.io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def write_label_stats(rows: list[tuple[int, int, float]], num_videos: int, out_dir: str) -> dict:
    """(label, count, weight) rows -> label_counts.csv and label_stats.json under ``out_dir``; returns the JSON."""
    _makedirs(out_dir)
    lines = "".join(f"{label},{count},{weight:.8g}\n" for label, count, weight in rows)
    _write_text(os.path.join(out_dir, LABEL_COUNTS_FILE), f"{COUNTS_HEADER}\n{lines}")
    stats = {
        "num_videos": num_videos,
        "num_classes": len(rows),
        "max_label": max((label for label, _, _ in rows), default=-1),
        "num_label_occurrences": sum(count for _, count, _ in rows),
    }
    _write_text(os.path.join(out_dir, LABEL_STATS_FILE), json.dumps(stats, indent=2))
    return stats


def _path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, LABEL_STATS_DIR, name)


def load_label_stats(data_dir: str) -> dict:
    """The parsed ``<data>/label_stats/label_stats.json``."""
    path = _path(data_dir, LABEL_STATS_FILE)
    try:
        stats = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(stats, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(stats).__name__}")  # noqa: TRY004 (bad input, one-line error)
    return stats


def load_num_classes(data_dir: str) -> int:
    """Output size of the classifiers: ``max_label + 1`` from label_stats.json."""
    stats = load_label_stats(data_dir)
    if stats.get("max_label") is None:
        raise ValueError(f"{_path(data_dir, LABEL_STATS_FILE)} has no 'max_label'")
    return int(stats["max_label"]) + 1


def load_label_counts(data_dir: str) -> list[tuple[int, int, float | None]]:
    """Rows of ``<data>/label_stats/label_counts.csv`` as (label, count, weight or None when blank/absent)."""
    path = _path(data_dir, LABEL_COUNTS_FILE)
    rows = list(csv.DictReader(io.StringIO(_read_text(path))))
    if rows and not {"label", "count"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns label,count[,weight], got {list(rows[0])}")
    try:
        return [(int(row["label"]), int(float(row["count"])), float(row["weight"]) if (row.get("weight") or "").strip()
                 else None) for row in rows]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: a row is not label,count[,weight] numbers ({error})") from None


def load_class_weights(data_dir: str, num_classes: int, power: float = 1.0) -> np.ndarray:
    """Per-class weights [num_classes] float32 from label_counts.csv, raised to ``power``.

    Uses the file's ``weight`` column; rows without one get ``class_weight`` (the definition above, over
    the file's counts). Classes absent from the file, or with count 0, get weight 1.
    """
    path = _path(data_dir, LABEL_COUNTS_FILE)
    rows = load_label_counts(data_dir)
    outside = sorted(label for label, _, _ in rows if label >= num_classes or label < 0)
    if outside:
        raise ValueError(f"{path}: labels {outside[:10]} are outside [0, {num_classes})")
    computed = {label: weight for label, _, weight in class_weight_rows({label: n for label, n, _ in rows})}
    weights = np.ones(num_classes, np.float64)
    for label, count, given in rows:
        if count > 0:
            weights[label] = computed[label] if given is None else given
    if np.any(weights <= 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f"{path}: class weights must be finite and positive")
    return (weights ** power).astype(np.float32)
