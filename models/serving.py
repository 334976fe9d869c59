"""Serving side: load an exported SavedModel (written by :mod:`models.export`) and predict records."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import inputs
from vidpipe import feature_space
from vidpipe.layout import (
    EXPORT_DIR,
    EXPORT_METADATA,
    LATEST_EXPORT,
    LEVELS,
    SERVING_SIGNATURE,
    record_pattern,
)


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


def read_export_metadata(export_dir: str) -> dict:
    """The vidpipe_export.json of the SavedModel ``export_dir`` (model_name, level, num_classes, feature_space, ...);
    a one-line FileNotFoundError/ValueError when it is missing or not a vidpipe export description."""
    path = os.path.join(export_dir, EXPORT_METADATA)
    try:
        with tf.io.gfile.GFile(path) as handle:
            metadata = json.loads(handle.read())
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"{path}: missing; {export_dir} is not a vidpipe export") from None
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("level") not in LEVELS or not isinstance(
            metadata.get("num_classes"), int):
        raise ValueError(f"{path}: not a vidpipe export description (needs level 'frame' or 'video' and num_classes)")
    return metadata


class ServingFunction:
    """A loaded export: ``fn(serialized records) -> {"video_id": [N] bytes, "probabilities": [N, C]}``.

    ``metadata`` is the export's vidpipe_export.json (model_name, level, num_classes, ...).
    """

    def __init__(self, export_dir: str):
        self.export_dir = resolve_export_dir(export_dir)
        self.metadata = read_export_metadata(self.export_dir)
        self._loaded = tf.saved_model.load(self.export_dir)
        self._signature = self._loaded.signatures[SERVING_SIGNATURE]

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


def check_feature_space(export_dir: str, metadata: dict, data_dir: str) -> None:
    """ValueError when the records under ``data_dir`` live in another feature space than the model's (its
    export ``metadata`` carries the space it was trained in; None for exports that predate it)."""
    feature_space.check_same(metadata.get("feature_space"), feature_space.read(data_dir),
                             f"model {export_dir}", f"records {data_dir}")


def labels_outside(labels: tf.RaggedTensor, num_classes: int) -> tuple[int, int | None]:
    """labels [N, (L)] -> (records carrying a label id >= num_classes, the largest such label or None)."""
    values = labels.flat_values.numpy()
    outside = values >= num_classes
    if not outside.any():
        return 0, None
    rows = labels.value_rowids().numpy()[outside]
    return int(np.unique(rows).size), int(values[outside].max())


def predict_records(model_dir_or_export: str, data_dir: str, batch_size: int = 256
                    ) -> tuple[list[str], np.ndarray, list[list[int]]]:
    """Predict every record under ``<data_dir>/{frame|video}/`` (the export's level).

    Returns (video_ids [N], probabilities [N, C] float32, labels: the records' label lists [N]),
    in file order (files sorted by name, each read in batches of ``batch_size``).

    Refused with a one-line ValueError: records in another feature space than the model's, records with
    label ids outside the model's classes (their metrics would be wrong), a truncated or corrupt record
    file or a record that is not of the model's level (both named).
    """
    serving = load_serving_fn(model_dir_or_export)
    check_feature_space(serving.export_dir, serving.metadata, data_dir)
    files = inputs.record_files(record_pattern(data_dir, serving.level))
    video_ids: list[str] = []
    probabilities: list[np.ndarray] = []
    labels: list[list[int]] = []
    outside_records, outside_max = 0, -1
    for path in files:
        for serialized in inputs.record_batches(path, batch_size):
            try:
                outputs = serving(serialized)
                batch_labels = inputs.parse_labels_batch(serialized, serving.level)
            except tf.errors.InvalidArgumentError as error:
                raise ValueError(f"record file {path}: holds a record that is not a {serving.level}-level record "
                                 f"({inputs.op_error_text(error)})") from None
            count, largest = labels_outside(batch_labels, serving.num_classes)
            if count:
                outside_records, outside_max = outside_records + count, max(outside_max, largest)
            video_ids.extend(video_id.decode("utf-8", "backslashreplace") for video_id in outputs["video_id"])
            probabilities.append(outputs["probabilities"])
            labels.extend(batch_labels.to_list())
    if outside_records:
        raise ValueError(f"records {data_dir}: {outside_records} of {len(video_ids)} records carry label ids "
                         f">= the model's {serving.num_classes} classes (largest {outside_max}); the model was "
                         f"trained on another label space, so its metrics on these records would be wrong")
    stacked = np.concatenate(probabilities) if probabilities else np.zeros((0, serving.num_classes), np.float32)
    return video_ids, stacked.astype(np.float32), [[int(label) for label in row] for row in labels]
