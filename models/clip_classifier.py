"""Clip classification over per-frame features (seed 001, UCF-101): one label per video.

Both models take ``{"features": float [B, T, D], "mask": float [B, T]}`` and return logits [B, C] for a
softmax cross-entropy (:func:`clip_classification_loss`, labels int [B]):

- :func:`build_clip_rnn`: stacked GRU/LSTM; the top layer's output at the last true frame -> dense logits.
- :func:`build_clip_pooling`: mean and max over the true frames, concatenated [B, 2D] -> (ReLU layer) -> logits.
"""

from __future__ import annotations

import keras
from keras import ops

from models.segmentation import FEATURES, MASK, BoolMask, for_config, rnn_layer, segmentation_inputs
from models.segmentation_config import ClipPoolingConfig, ClipRnnConfig


@keras.saving.register_keras_serializable(package="vidpipe")
class MaskedMeanMaxPooling(keras.layers.Layer):
    """(frames [B, T, D], mask [B, T]) -> concat(mean, max) over the true frames [B, 2D]; zeros for no frame."""

    def call(self, frames, mask):
        weights = ops.cast(mask, frames.dtype)[..., None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        mean = ops.sum(frames * weights, axis=1) / count
        lowest = ops.cast(-3.0e38, frames.dtype) if frames.dtype == "float32" else ops.cast(-65504.0, frames.dtype)
        maximum = ops.max(ops.where(weights > 0, frames, lowest), axis=1)
        maximum = ops.where(ops.sum(weights, axis=1) > 0, maximum, ops.zeros_like(maximum))
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None


def build_clip_rnn(cfg: ClipRnnConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """features [B, T, D] -> ``cfg.layers`` GRU/LSTM layers (padded frames skipped) -> last true output -> [B, C]."""
    inputs = segmentation_inputs(feature_dim)
    frames_valid = BoolMask(name="bool_mask")(inputs[MASK])
    x = inputs[FEATURES]
    for index in range(cfg.layers):
        last = index == cfg.layers - 1
        rnn = rnn_layer(cfg.cell, cfg.units, return_sequences=not last, name=f"{cfg.cell}_{index}")
        if cfg.bidirectional:
            rnn = keras.layers.Bidirectional(rnn, name=f"bi_{cfg.cell}_{index}")
        x = rnn(x, mask=frames_valid)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="clip_rnn")


def build_clip_pooling(cfg: ClipPoolingConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """features [B, T, D] -> mean+max over true frames [B, 2D] -> (ReLU hidden, dropout) -> logits [B, C]."""
    inputs = segmentation_inputs(feature_dim)
    x = MaskedMeanMaxPooling(name="mean_max_pool")(inputs[FEATURES], inputs[MASK])
    if cfg.hidden_units:
        x = keras.layers.Dense(cfg.hidden_units, activation="relu", name="hidden")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="clip_pooling")


CLIP_BUILDERS = {ClipRnnConfig: build_clip_rnn, ClipPoolingConfig: build_clip_pooling}


def build_clip_classifier(cfg: ClipRnnConfig | ClipPoolingConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """The model of a clip classifier config."""
    return for_config(CLIP_BUILDERS, cfg, "clip classifier")(cfg, feature_dim, num_classes)


def clip_classification_loss() -> keras.losses.Loss:
    """Softmax cross-entropy of logits [B, C] against int labels [B]."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="clip_cross_entropy")
