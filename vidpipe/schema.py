"""The YouTube-8M feature schema: the one owner of names, sizes and quantization.

Frame level records are ``tf.train.SequenceExample``:
  context  ``id`` (bytes), ``labels`` (int64 list)
  features ``rgb`` (1024 bytes per frame), ``audio`` (128 bytes per frame)
Video level records are ``tf.train.Example``:
  ``id`` (bytes), ``labels`` (int64 list), ``mean_rgb`` (1024 floats), ``mean_audio`` (128 floats)

Quantization is the dataset's: clip to [-2, 2] and map linearly to 0..255; dequantize with
``q * 4/255 + 4/512 - 2`` (the centre of each bucket).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIDEO_ID = "id"
LABELS = "labels"
RGB = "rgb"
AUDIO = "audio"
MEAN_RGB = "mean_rgb"
MEAN_AUDIO = "mean_audio"

RGB_SIZE = 1024
AUDIO_SIZE = 128
CNN_FEATURE_SIZE = 2048
MAX_FRAMES = 300

MIN_QUANTIZED_VALUE = -2.0
MAX_QUANTIZED_VALUE = 2.0
QUANTIZED_RANGE = MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE
QUANTIZE_SCALE = 255.0 / QUANTIZED_RANGE
DEQUANTIZE_SCALE = QUANTIZED_RANGE / 255.0
DEQUANTIZE_BIAS = QUANTIZED_RANGE / 512.0 + MIN_QUANTIZED_VALUE

FRAME_DIR = "frame"
VIDEO_DIR = "video"
RECORD_SUFFIX = ".tfrecord"


@dataclass(frozen=True)
class FeatureSpec:
    """One per-frame feature stream and the name of its video-level mean."""

    name: str
    size: int
    mean_name: str


FEATURES = (
    FeatureSpec(RGB, RGB_SIZE, MEAN_RGB),
    FeatureSpec(AUDIO, AUDIO_SIZE, MEAN_AUDIO),
)


def quantize(features: np.ndarray) -> np.ndarray:
    """Float features of any shape -> uint8 of the same shape (clip to [-2, 2], 0..255)."""
    clipped = np.clip(np.asarray(features, dtype=np.float32), MIN_QUANTIZED_VALUE, MAX_QUANTIZED_VALUE)
    return np.round((clipped - MIN_QUANTIZED_VALUE) * QUANTIZE_SCALE).astype(np.uint8)


def dequantize(quantized) -> np.ndarray:
    """uint8 (or float holding 0..255) -> float32 bucket centres, same shape."""
    return np.asarray(quantized, dtype=np.float32) * DEQUANTIZE_SCALE + DEQUANTIZE_BIAS


def frame_record_path_pattern(data_dir: str) -> str:
    return f"{data_dir.rstrip('/')}/{FRAME_DIR}/*{RECORD_SUFFIX}"


def video_record_path_pattern(data_dir: str) -> str:
    return f"{data_dir.rstrip('/')}/{VIDEO_DIR}/*{RECORD_SUFFIX}"
