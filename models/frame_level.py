"""Frame level classifiers over {"rgb": [B, T, 1024], "audio": [B, T, 128], "num_frames": [B]}.

Frames past ``num_frames`` are padding: every pooling, batch-norm statistic and recurrent step
ignores them. Models with a video-level head (DBoF, RNN) receive the head layer from
:mod:`models.registry`, which resolves ``video_level_model`` by name.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from models.config import DbofConfig, FrameLevelLogisticConfig, InputConfig, RnnConfig
from models.features import NUM_FRAMES, concatenate_features, frame_level_inputs
from models.video_level import LogisticHead


def frame_mask(frames, num_frames):
    """frames [B, T, D], num_frames [B] -> bool [B, T], True on the true frames."""
    steps = ops.arange(ops.shape(frames)[1], dtype="int32")
    return ops.less(steps[None, :], ops.cast(num_frames, "int32")[:, None])


class FrameMask(keras.layers.Layer):
    """(frames [B, T, D], num_frames [B]) -> bool mask [B, T]."""

    def call(self, frames, num_frames):
        return frame_mask(frames, num_frames)


class FramePooling(keras.layers.Layer):
    """(frames [B, T, D], num_frames [B]) -> [B, D], "average" or "max" over the true frames.

    A video with no frames pools to zeros. A Keras mask arriving with ``frames`` is consumed
    (num_frames already says which frames are true) and not passed on.
    """

    def __init__(self, method: str = "average", **kwargs):
        super().__init__(**kwargs)
        if method not in ("average", "max"):
            raise ValueError(f"pooling must be 'average' or 'max', got {method!r}")
        self.method = method

    def call(self, frames, num_frames, mask=None):
        mask = ops.cast(frame_mask(frames, num_frames), frames.dtype)[..., None]
        if self.method == "average":
            count = ops.maximum(ops.cast(num_frames, frames.dtype), ops.cast(1, frames.dtype))
            return ops.sum(frames * mask, axis=1) / count[:, None]
        lowest = ops.cast(-65504.0, frames.dtype)
        pooled = ops.max(ops.where(mask > 0, frames, lowest), axis=1)
        return ops.where(ops.cast(num_frames, "int32")[:, None] > 0, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "method": self.method}


class RandomFrameSampler(keras.layers.Layer):
    """Training only: (frames [B, T, D], num_frames [B]) -> (frames [B, S, D], num_frames [B]).

    Draws S frame indices per video uniformly, with replacement, from its true frames (the
    starter's SampleRandomFrames). At inference the inputs pass through unchanged.
    """

    def __init__(self, num_samples: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_samples = num_samples
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, frames, num_frames, training=None):
        if not training:
            return frames, num_frames
        num_frames = ops.cast(num_frames, "int32")
        uniform = keras.random.uniform(
            (ops.shape(frames)[0], self.num_samples), seed=self.seed_generator)
        indices = ops.cast(uniform * ops.cast(num_frames, "float32")[:, None], "int32")
        indices = ops.minimum(indices, ops.maximum(num_frames - 1, 0)[:, None])
        sampled = ops.take_along_axis(frames, indices[..., None], axis=1)
        sampled_count = ops.where(num_frames > 0, self.num_samples, 0)
        return sampled, ops.cast(sampled_count, "int32")

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples, "seed": self.seed}


def build_frame_logistic(cfg: FrameLevelLogisticConfig, num_classes: int, input_cfg: InputConfig) -> keras.Model:
    """Mean over the true frames of the concatenated features [B, D], then a logistic layer -> [B, C]."""
    inputs = frame_level_inputs(input_cfg.feature_names)
    frames = concatenate_features([inputs[name] for name in input_cfg.feature_names])
    pooled = FramePooling("average", name="mean_pool")(frames, inputs[NUM_FRAMES])
    probabilities = LogisticHead(num_classes, cfg.l2_penalty, name="logistic_head")(pooled)
    return keras.Model(inputs, probabilities, name="frame_logistic")


def _normal(fan_in: int) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(fan_in))


def build_dbof(cfg: DbofConfig, num_classes: int, input_cfg: InputConfig,
               head: keras.layers.Layer) -> keras.Model:
    """Deep Bag of Frames.

    frames [B, T, D] -> (training: S sampled frames) -> BN -> projection to cluster_size [B, T, K]
    -> BN -> relu6 -> max/average pool over true frames [B, K] -> hidden [B, H] -> BN -> relu6
    -> ``head`` -> [B, C]. With add_batch_norm the batch norms replace the biases.
    """
    inputs = frame_level_inputs(input_cfg.feature_names)
    frames = concatenate_features([inputs[name] for name in input_cfg.feature_names])
    num_frames = inputs[NUM_FRAMES]
    feature_dim = sum(inputs[name].shape[-1] for name in input_cfg.feature_names)
    if cfg.sample_random_frames:
        frames, num_frames = RandomFrameSampler(cfg.num_sampled_frames, name="sample_frames")(frames, num_frames)
    mask = FrameMask(name="frame_mask")(frames, num_frames)
    x = frames
    if cfg.add_batch_norm:
        x = keras.layers.BatchNormalization(name="input_bn")(x, mask=mask)
    x = keras.layers.Dense(cfg.cluster_size, use_bias=not cfg.add_batch_norm,
                           kernel_initializer=_normal(feature_dim), name="cluster")(x)
    if cfg.add_batch_norm:
        x = keras.layers.BatchNormalization(name="cluster_bn")(x, mask=mask)
    x = keras.layers.ReLU(max_value=6.0, name="cluster_relu6")(x)
    x = FramePooling(cfg.pooling, name=f"{cfg.pooling}_pool")(x, num_frames)
    x = keras.layers.Dense(cfg.hidden_size, use_bias=not cfg.add_batch_norm,
                           kernel_initializer=_normal(cfg.cluster_size), name="hidden")(x)
    if cfg.add_batch_norm:
        x = keras.layers.BatchNormalization(name="hidden_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name="hidden_relu6")(x)
    return keras.Model(inputs, head(x), name="dbof")


def build_rnn(cfg: RnnConfig, num_classes: int, input_cfg: InputConfig,
              head: keras.layers.Layer) -> keras.Model:
    """Stacked LSTM/GRU over the true frames; the top layer's output at the last true frame
    (both directions concatenated when bidirectional) [B, U or 2U] -> ``head`` -> [B, C]."""
    if cfg.layers < 1:
        raise ValueError(f"RnnConfig.layers must be >= 1, got {cfg.layers}")
    inputs = frame_level_inputs(input_cfg.feature_names)
    x = concatenate_features([inputs[name] for name in input_cfg.feature_names])
    mask = FrameMask(name="frame_mask")(x, inputs[NUM_FRAMES])
    cell_cls = keras.layers.LSTM if cfg.cell == "lstm" else keras.layers.GRU
    for index in range(cfg.layers):
        last = index == cfg.layers - 1
        layer = cell_cls(cfg.units, return_sequences=not last, name=f"{cfg.cell}_{index}")
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi{cfg.cell}_{index}")
        x = layer(x, mask=mask)
    return keras.Model(inputs, head(x), name=f"{cfg.cell}_stack")
