"""Prediction with an exported SavedModel (see :mod:`models.train` for the export layout)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from models import inputs
from models.train import EXPORT_DIR, EXPORT_METADATA, LATEST_EXPORT, SERVING_SIGNATURE, record_pattern


def resolve_export_dir(path: str) -> str:
    """A SavedModel directory from a train_dir, its export/ root, the export/latest file or an export itself."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    candidates = [path] if not tf.io.gfile.isdir(path) else [
        os.path.join(path, LATEST_EXPORT), os.path.join(path, EXPORT_DIR, LATEST_EXPORT)]
    for pointer in candidates:
        if tf.io.gfile.exists(pointer) and not tf.io.gfile.isdir(pointer):
            with tf.io.gfile.GFile(pointer) as handle:
                export_dir = os.path.join(os.path.dirname(pointer), handle.read().strip())
            if tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
                return export_dir
            raise FileNotFoundError(f"{pointer} names {export_dir}, which holds no SavedModel")
    raise FileNotFoundError(f"no SavedModel at {path} (looked for saved_model.pb and {EXPORT_DIR}/{LATEST_EXPORT})")


class ServingFunction:
    """A loaded export: ``fn(serialized records) -> {"video_id": [N] bytes, "probabilities": [N, C]}``.

    ``metadata`` is the export's vidpipe_export.json (model_name, level, num_classes, ...).
    """

    def __init__(self, export_dir: str):
        self.export_dir = resolve_export_dir(export_dir)
        self._loaded = tf.saved_model.load(self.export_dir)
        self._signature = self._loaded.signatures[SERVING_SIGNATURE]
        with tf.io.gfile.GFile(os.path.join(self.export_dir, EXPORT_METADATA)) as handle:
            self.metadata = json.load(handle)

    @property
    def level(self) -> str:
        return self.metadata["level"]

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    def __call__(self, serialized: Sequence[bytes] | tf.Tensor) -> dict[str, np.ndarray]:
        outputs = self._signature(serialized=tf.convert_to_tensor(serialized, tf.string))
        return {name: value.numpy() for name, value in outputs.items()}


def load_serving_fn(export_dir: str) -> ServingFunction:
    """Load the "serving_default" signature of an export (or a train_dir's latest export)."""
    return ServingFunction(export_dir)


def predict_records(model_dir_or_export: str, data_dir: str, batch_size: int = 256
                    ) -> tuple[list[str], np.ndarray, list[list[int]]]:
    """Predict every record under ``<data_dir>/{frame|video}/`` (the export's level).

    Returns (video_ids [N], probabilities [N, C] float32, labels: the records' label lists [N]),
    in file order (files sorted by name).
    """
    serving = load_serving_fn(model_dir_or_export)
    files = inputs.record_files(record_pattern(data_dir, serving.level))
    dataset = tf.data.TFRecordDataset(files).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    video_ids: list[str] = []
    probabilities: list[np.ndarray] = []
    labels: list[list[int]] = []
    for serialized in dataset:
        outputs = serving(serialized)
        video_ids.extend(video_id.decode() for video_id in outputs["video_id"])
        probabilities.append(outputs["probabilities"])
        labels.extend(inputs.parse_labels_batch(serialized, serving.level).to_list())
    stacked = np.concatenate(probabilities) if probabilities else np.zeros((0, serving.num_classes), np.float32)
    return video_ids, stacked.astype(np.float32), [[int(label) for label in row] for row in labels]
