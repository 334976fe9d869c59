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
MAX_VIDEO_ID_LENGTH = 255
MAX_CLASSES = 100_000
"""Label ids lie in [0, MAX_CLASSES): the classifier has one output per class (YouTube-8M has 3862), so a
stray id of 10**9 would ask training for a [features, 10**9] weight matrix."""

MIN_QUANTIZED_VALUE = -2.0
MAX_QUANTIZED_VALUE = 2.0
QUANTIZED_RANGE = MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE
QUANTIZE_SCALE = 255.0 / QUANTIZED_RANGE
DEQUANTIZE_SCALE = QUANTIZED_RANGE / 255.0
DEQUANTIZE_BIAS = QUANTIZED_RANGE / 512.0 + MIN_QUANTIZED_VALUE

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


def video_id_problem(video_id: str) -> str | None:
    """Why ``video_id`` cannot name a record, a file and a submission CSV row; None when it can.

    The one rule for ids, applied at ingest to file names and to the labels CSV: non-empty, at most
    MAX_VIDEO_ID_LENGTH characters, printable UTF-8 (no line break, tab, NUL or other control character),
    no comma, double quote or '/', no whitespace at either end, not starting with '.'.
    """
    if not isinstance(video_id, str):
        return f"video id {video_id!r} is not text"
    if not video_id:
        return "empty video id"
    shown = repr(video_id if len(video_id) <= 60 else video_id[:60] + "...")
    if len(video_id) > MAX_VIDEO_ID_LENGTH:
        return f"video id {shown} is {len(video_id)} characters long, more than {MAX_VIDEO_ID_LENGTH}"
    try:
        video_id.encode("utf-8")
    except UnicodeEncodeError:
        return f"video id {shown} is not valid UTF-8 (the file name holds undecodable bytes)"
    if "," in video_id:
        return f"video id {shown} contains a comma, which a submission CSV cannot carry"
    if any(ch in video_id for ch in "\n\r"):
        return f"video id {shown} contains a line break, which a submission CSV cannot carry"
    if '"' in video_id:
        return f"video id {shown} contains a double quote, which a submission CSV cannot carry unquoted"
    if "/" in video_id:
        return f"video id {shown} contains '/', which a file name cannot carry"
    if video_id != video_id.strip():
        return f"video id {shown} begins or ends with whitespace, which CSV readers strip"
    unprintable = next((ch for ch in video_id if not ch.isprintable()), None)
    if unprintable is not None:
        return (f"video id {shown} contains the non-printable character {unprintable!r} (U+{ord(unprintable):04X}), "
                "which a submission CSV cannot carry")
    if video_id.startswith("."):
        return f"video id {shown} starts with '.', the mark of a hidden file"
    return None


def label_id_problem(label: int) -> str | None:
    """Why ``label`` cannot be a class id (outside [0, MAX_CLASSES)); None when it can."""
    if 0 <= label < MAX_CLASSES:
        return None
    return (f"label id {label} is outside [0, {MAX_CLASSES}): the classifier has one output per class id, so "
            f"label ids must be class indices below vidpipe.schema.MAX_CLASSES (YouTube-8M uses 0..3861)")

