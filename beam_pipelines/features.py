"""ImageNet CNN features per frame: Keras InceptionV3 without its top, average pooled (2048-d).

Weights come from a file (``--backbone-weights``); nothing is downloaded. Without a file the network is
initialised from a fixed seed, so every worker computes the same (meaningless for transfer, but
consistent) features, and the run's metadata says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vidpipe import schema

logger = logging.getLogger(__name__)

RANDOM_INIT_SEED = 20_160_927
RANDOM_INIT_WARNING = (
    "No --backbone-weights given: InceptionV3 is randomly initialised (seed {seed}). The features are "
    "consistent across runs but carry no ImageNet knowledge; pass an ImageNet weights file for real features."
)


@dataclass(frozen=True)
class BackboneConfig:
    """How frames become CNN features."""

    weights_path: str | None = None
    input_size: int = 299
    batch_size: int = 32

    @property
    def random_init(self) -> bool:
        return not self.weights_path

    def warnings(self) -> list[str]:
        return [RANDOM_INIT_WARNING.format(seed=RANDOM_INIT_SEED)] if self.random_init else []


def build_backbone(config: BackboneConfig):
    """A Keras InceptionV3 (include_top=False, pooling='avg'): uint8-range RGB [B, S, S, 3] -> [B, 2048]."""
    import keras

    if config.random_init:
        keras.utils.set_random_seed(RANDOM_INIT_SEED)
    model = keras.applications.InceptionV3(
        include_top=False, weights=None, pooling="avg", input_shape=(config.input_size, config.input_size, 3))
    if config.weights_path:
        model.load_weights(config.weights_path)
    if model.output_shape[-1] != schema.CNN_FEATURE_SIZE:
        raise ValueError(f"backbone gives {model.output_shape[-1]}-d features, the schema expects {schema.CNN_FEATURE_SIZE}")
    return model


class FrameFeatureExtractor:
    """Batched CNN inference: uint8 frames [T, S, S, 3] -> float32 features [T, 2048]."""

    def __init__(self, config: BackboneConfig):
        import tensorflow as tf
        from keras.applications import inception_v3

        self.config = config
        self._model = build_backbone(config)
        self._preprocess = inception_v3.preprocess_input
        spec = tf.TensorSpec([None, config.input_size, config.input_size, 3], tf.float32)
        self._forward = tf.function(lambda x: self._model(x, training=False), input_signature=[spec])

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(frames), self.config.batch_size):
            batch = self._preprocess(frames[start:start + self.config.batch_size].astype(np.float32))
            outputs.append(self._forward(batch).numpy())
        if not outputs:
            return np.zeros((0, schema.CNN_FEATURE_SIZE), np.float32)
        return np.concatenate(outputs).astype(np.float32)
