"""SavedModel export of a trained model, and the model rebuilt from a train dir's checkpoint.

``<train_dir>/export/<step>/`` is a SavedModel whose signature "serving_default" maps serialized records
[N] string -> {"video_id": [N] string, "probabilities": [N, C] float32}, with ``vidpipe_export.json``
(model name, level, num_classes, feature names, max_frames, step, config, feature space) beside it;
``export/latest`` names the newest export. :mod:`models.serving` loads them.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from models import inputs, registry
from models.config import ExperimentConfig
from models.features import VIDEO_ID, model_inputs
from vidpipe import feature_space
from vidpipe.layout import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EXPORT_METADATA,
    LATEST_EXPORT,
    SERVING_SIGNATURE,
)


class ServingModule(tf.Module):
    """Wraps a Keras model with a string-in signature: serialized records [N] -> video ids, probabilities."""

    def __init__(self, model: keras.Model, level: str, feature_names: tuple[str, ...], max_frames: int):
        super().__init__(name="vidpipe_serving")
        self.model = model
        self._level = level
        self._feature_names = tuple(feature_names)
        self._max_frames = max_frames
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="serialized")])

    def _serve(self, serialized):
        features = inputs.parse_serialized_batch(serialized, self._level, self._feature_names, self._max_frames)
        probabilities = self.model(model_inputs(features, self._level, self._feature_names), training=False)
        return {"video_id": features[VIDEO_ID], "probabilities": tf.cast(probabilities, tf.float32)}


def _write_text_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as handle:
        handle.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def export_metadata(cfg: ExperimentConfig, step: int, train_data_dir: str | None) -> dict:
    """The content of vidpipe_export.json; the feature space of ``train_data_dir`` (None when unknown)."""
    return {"model_name": cfg.model_name, "level": cfg.input.level, "num_classes": cfg.num_classes,
            "feature_names": list(cfg.input.feature_names), "max_frames": cfg.input.max_frames,
            "step": step, "signature": SERVING_SIGNATURE, "config": cfg.to_dict(),
            "feature_space": feature_space.read(train_data_dir) if train_data_dir else None}


def export_saved_model(model: keras.Model, cfg: ExperimentConfig, export_root: str, step: int,
                       train_data_dir: str | None = None) -> str:
    """Write ``<export_root>/<step>/`` (SavedModel + vidpipe_export.json) and point ``latest`` at it.

    The metadata carries the feature space of ``train_data_dir``'s records (None when unknown), which
    prediction and evaluation compare with the records they score.
    """
    export_dir = os.path.join(export_root, str(step))
    staging = f"{export_dir}.tmp"
    for path in (staging, export_dir):
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    module = ServingModule(model, cfg.input.level, cfg.input.feature_names, cfg.input.max_frames)
    tf.saved_model.save(module, staging, signatures={SERVING_SIGNATURE: module.serve})
    with tf.io.gfile.GFile(os.path.join(staging, EXPORT_METADATA), "w") as handle:
        json.dump(export_metadata(cfg, step, train_data_dir), handle, indent=2)
    tf.io.gfile.rename(staging, export_dir)
    _write_text_atomically(os.path.join(export_root, LATEST_EXPORT), f"{step}\n")
    return export_dir


def load_model_from_checkpoint(train_dir: str, checkpoint_path: str | None = None
                               ) -> tuple[keras.Model, ExperimentConfig]:
    """Rebuild the model from ``train_dir/config.json`` and restore a checkpoint (default: latest)."""
    cfg = ExperimentConfig.load(os.path.join(train_dir, CONFIG_FILE))
    checkpoint_path = checkpoint_path or tf.train.latest_checkpoint(os.path.join(train_dir, CHECKPOINT_DIR))
    if checkpoint_path is None:
        raise FileNotFoundError(f"no checkpoint under {os.path.join(train_dir, CHECKPOINT_DIR)}")
    model = registry.build_model(cfg)
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial()
    return model, cfg
