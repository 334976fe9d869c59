"""Video level classifiers: logistic regression and a Mixture of (logistic) Experts.

The heads are layers mapping a vector [B, D] to per-class probabilities [B, C]; frame level models
reuse them on their pooled representation. They always compute in float32, so under a
mixed_float16 policy the probabilities (and the loss) stay float32.

L2 penalties follow the starter's convention ``l2_penalty * sum(w**2) / 2``.
"""

from __future__ import annotations

import keras
from keras import ops

from models.config import InputConfig, LogisticConfig, MoeConfig
from models.features import concatenate_features, video_level_inputs


def _l2(l2_penalty: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(l2_penalty / 2.0) if l2_penalty > 0 else None


class LogisticHead(keras.layers.Layer):
    """[B, D] -> sigmoid(x W + b) [B, C]."""

    def __init__(self, num_classes: int, l2_penalty: float = 1e-8, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.l2_penalty = l2_penalty
        self.dense = keras.layers.Dense(
            num_classes, activation="sigmoid", kernel_regularizer=_l2(l2_penalty), dtype="float32", name="logits")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        return self.dense(ops.cast(inputs, "float32"))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "l2_penalty": self.l2_penalty}


class MoeHead(keras.layers.Layer):
    """[B, D] -> [B, C]: p_c = sum_m softmax(gates_c)[m] * sigmoid(expert_{c,m}).

    The gate is a softmax over ``num_mixtures + 1`` choices; the extra one is a dummy expert that
    always predicts 0 and is dropped from the sum. Gates have no bias, as in the starter.
    """

    def __init__(self, num_classes: int, num_mixtures: int = 2, l2_penalty: float = 1e-6, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {num_mixtures}")
        self.num_classes = num_classes
        self.num_mixtures = num_mixtures
        self.l2_penalty = l2_penalty
        self.gates = keras.layers.Dense(
            num_classes * (num_mixtures + 1), use_bias=False, kernel_regularizer=_l2(l2_penalty),
            dtype="float32", name="gates")
        self.experts = keras.layers.Dense(
            num_classes * num_mixtures, kernel_regularizer=_l2(l2_penalty), dtype="float32", name="experts")

    def build(self, input_shape):
        self.gates.build(input_shape)
        self.experts.build(input_shape)

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        gating = ops.softmax(
            ops.reshape(self.gates(inputs), (-1, self.num_classes, self.num_mixtures + 1)), axis=-1)
        experts = ops.sigmoid(ops.reshape(self.experts(inputs), (-1, self.num_classes, self.num_mixtures)))
        return ops.sum(gating[..., : self.num_mixtures] * experts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "num_mixtures": self.num_mixtures, "l2_penalty": self.l2_penalty}


def logistic_head(cfg: LogisticConfig, num_classes: int) -> keras.layers.Layer:
    return LogisticHead(num_classes, cfg.l2_penalty, name="logistic_head")


def moe_head(cfg: MoeConfig, num_classes: int) -> keras.layers.Layer:
    return MoeHead(num_classes, cfg.num_mixtures, cfg.l2_penalty, name="moe_head")


def _video_model(head: keras.layers.Layer, input_cfg: InputConfig, name: str) -> keras.Model:
    inputs = video_level_inputs(input_cfg.feature_names)
    probabilities = head(concatenate_features(inputs.values()))
    return keras.Model(inputs, probabilities, name=name)


def build_logistic(cfg: LogisticConfig, num_classes: int, input_cfg: InputConfig) -> keras.Model:
    """{mean_rgb [B,1024], mean_audio [B,128]} -> probabilities [B, C]."""
    return _video_model(logistic_head(cfg, num_classes), input_cfg, "logistic")


def build_moe(cfg: MoeConfig, num_classes: int, input_cfg: InputConfig) -> keras.Model:
    """{mean_rgb [B,1024], mean_audio [B,128]} -> probabilities [B, C]."""
    return _video_model(moe_head(cfg, num_classes), input_cfg, "moe")
