"""PCA with whitening from the CNN features (2048-d InceptionV3, 1280-d EfficientNet-Lite0) to the 1024-d ``rgb``.

Two sources for the projection:
- fitted on the corpus with tensorflow-transform (``tft.mean``, ``tft.pca``, ``tft.var``) and saved as a
  transform function that later runs (other splits, new videos) reuse with ``--transform-dir``;
- YouTube-8M's published PCA files (``mean.npy``, ``eigenvecs.npy``, ``eigenvals.npy``) with ``--pca-dir``.

Both compute ``(x - mean) @ V / sqrt(eigenvalue + 1e-4)``, YouTube-8M's whitening.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from vidpipe import layout, schema

WHITENING_EPSILON = 1e-4
CNN_KEY = "cnn"
VIDEO_ID_KEY = "video_id"
FRAME_INDEX_KEY = "frame_index"


def raw_feature_spec(feature_size: int = schema.CNN_FEATURE_SIZE) -> dict:
    """tf.Transform input spec; ``feature_size`` is the backbone's (schema.CNN_FEATURE_SIZE: InceptionV3's)."""
    import tensorflow as tf

    return {
        VIDEO_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        FRAME_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
        CNN_KEY: tf.io.FixedLenFeature([feature_size], tf.float32),
    }


def preprocessing_fn(inputs: dict) -> dict:
    """tf.Transform: {cnn: [B, F]} -> {rgb: [B, 1024] whitened}; id and frame index pass through."""
    import tensorflow as tf
    import tensorflow_transform as tft

    cnn = inputs[CNN_KEY]
    mean = tft.mean(cnn, reduce_instance_dims=False)
    components = tft.pca(cnn, output_dim=schema.RGB_SIZE, dtype=tf.float32)
    projected = tf.matmul(cnn - mean, components)
    eigenvalues = tft.var(projected, reduce_instance_dims=False)
    return {
        VIDEO_ID_KEY: inputs[VIDEO_ID_KEY],
        FRAME_INDEX_KEY: inputs[FRAME_INDEX_KEY],
        schema.RGB: projected * tf.math.rsqrt(eigenvalues + WHITENING_EPSILON),
    }


def write_transform_info(transform_dir: str, backbone: str, feature_size: int) -> None:
    """Records which backbone's features a fitted transform expects, beside tf.Transform's own output."""
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(transform_dir, layout.TRANSFORM_INFO_FILE), "w") as handle:
        json.dump({"backbone": backbone, "feature_size": feature_size, "output_size": schema.RGB_SIZE}, handle)


def check_transform_dir(transform_dir: str, backbone: str, feature_size: int) -> None:
    """Raises a clear error when ``transform_dir`` is no fitted transform or was fitted on another backbone."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(os.path.join(transform_dir, "transform_fn")):
        raise FileNotFoundError(f"--transform-dir {transform_dir}: no transform_fn/ in it; pass the "
                                f"{layout.TRANSFORM_DIR}/ folder that an earlier ingest wrote")
    info_path = os.path.join(transform_dir, layout.TRANSFORM_INFO_FILE)
    if not tf.io.gfile.exists(info_path):
        return
    with tf.io.gfile.GFile(info_path) as handle:
        info = json.load(handle)
    if info.get("feature_size") != feature_size:
        raise ValueError(f"--transform-dir {transform_dir} was fitted on {info.get('backbone')} features "
                         f"({info.get('feature_size')}-d); this run extracts {backbone} features ({feature_size}-d). "
                         f"Use the same --backbone, or fit a new PCA (leave out --transform-dir)")


@dataclass(frozen=True)
class NumpyPca:
    """PCA files as YouTube-8M publishes them: mean [F], eigenvecs [F, 1024] (columns), eigenvals [1024].

    F is the CNN feature size: 2048 for YouTube-8M's own (InceptionV3) files.
    """

    mean: np.ndarray
    eigenvecs: np.ndarray
    eigenvals: np.ndarray

    @classmethod
    def load(cls, pca_dir: str, feature_size: int = schema.CNN_FEATURE_SIZE) -> "NumpyPca":
        """Reads mean.npy, eigenvecs.npy (rows are eigenvectors, as distributed) and eigenvals.npy."""
        paths = {name: os.path.join(pca_dir, f"{name}.npy") for name in ("mean", "eigenvecs", "eigenvals")}
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(f"--pca-dir {pca_dir}: missing {', '.join(missing)}")
        mean = np.load(paths["mean"]).reshape(-1)
        eigenvals = np.load(paths["eigenvals"]).reshape(-1)[: schema.RGB_SIZE]
        eigenvecs = np.load(paths["eigenvecs"])
        if eigenvecs.shape[1] != feature_size and eigenvecs.shape[0] == feature_size:
            eigenvecs = eigenvecs.T
        eigenvecs = eigenvecs[: schema.RGB_SIZE].T
        expected = (feature_size, schema.RGB_SIZE)
        if mean.shape != (feature_size,) or eigenvecs.shape != expected or eigenvals.shape != (schema.RGB_SIZE,):
            raise ValueError(
                f"--pca-dir {pca_dir}: expected mean [{feature_size}], eigenvecs with "
                f"{schema.RGB_SIZE}+ rows of {feature_size}, eigenvals [{schema.RGB_SIZE}+]; got "
                f"{mean.shape}, {eigenvecs.shape}, {eigenvals.shape}")
        return cls(mean.astype(np.float32), eigenvecs.astype(np.float32), eigenvals.astype(np.float32))

    def save(self, pca_dir: str) -> None:
        os.makedirs(pca_dir, exist_ok=True)
        np.save(os.path.join(pca_dir, "mean.npy"), self.mean)
        np.save(os.path.join(pca_dir, "eigenvecs.npy"), self.eigenvecs.T)
        np.save(os.path.join(pca_dir, "eigenvals.npy"), self.eigenvals)

    def __call__(self, cnn: np.ndarray) -> np.ndarray:
        """[T, F] -> whitened [T, 1024]."""
        return (cnn - self.mean) @ self.eigenvecs / np.sqrt(self.eigenvals + WHITENING_EPSILON)
