"""Names of the model inputs and the Keras inputs built from them.

Frame level models take {"rgb": [B, T, 1024], "audio": [B, T, 128], "num_frames": [B] int32};
video level models take {"mean_rgb": [B, 1024], "mean_audio": [B, 128]}. Only the configured
``feature_names`` are present. Batches from :mod:`models.inputs` also carry "video_id" [B] string,
which is not a model input; :func:`model_inputs` selects the model's keys.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras

from vidpipe import layout, schema

VIDEO_ID = "video_id"
NUM_FRAMES = "num_frames"

_SPECS = {spec.name: spec for spec in schema.FEATURES}


def feature_size(name: str) -> int:
    """Width of one frame of ``name`` ("rgb" -> 1024)."""
    if name not in _SPECS:
        raise ValueError(f"unknown feature {name!r}; known: {sorted(_SPECS)}")
    return _SPECS[name].size


def mean_feature_name(name: str) -> str:
    """Video-level name of a frame stream ("rgb" -> "mean_rgb")."""
    if name not in _SPECS:
        raise ValueError(f"unknown feature {name!r}; known: {sorted(_SPECS)}")
    return _SPECS[name].mean_name


def model_input_keys(level: str, feature_names: Sequence[str]) -> list[str]:
    """The dict keys a model of ``level`` reads, in concatenation order."""
    if layout.check_level(level) == layout.FRAME_DIR:
        return [*feature_names, NUM_FRAMES]
    return [mean_feature_name(name) for name in feature_names]


def model_inputs(features: Mapping, level: str, feature_names: Sequence[str]) -> dict:
    """Select the model's keys from a batch dict (drops "video_id" and anything else)."""
    keys = model_input_keys(level, feature_names)
    missing = [key for key in keys if key not in features]
    if missing:
        raise KeyError(f"batch lacks model inputs {missing}; it has {sorted(features)}")
    return {key: features[key] for key in keys}


def video_level_inputs(feature_names: Sequence[str]) -> dict[str, keras.KerasTensor]:
    """Keras inputs {mean_<name>: [B, size]}."""
    return {mean_feature_name(name): keras.Input((feature_size(name),), name=mean_feature_name(name))
            for name in feature_names}


def frame_level_inputs(feature_names: Sequence[str]) -> dict[str, keras.KerasTensor]:
    """Keras inputs {<name>: [B, T, size], num_frames: [B] int32}; T is left dynamic."""
    inputs = {name: keras.Input((None, feature_size(name)), name=name) for name in feature_names}
    inputs[NUM_FRAMES] = keras.Input((), dtype="int32", name=NUM_FRAMES)
    return inputs


def concatenate_features(tensors: Sequence) -> keras.KerasTensor:
    """Concatenate along the last axis; a single tensor passes through."""
    tensors = list(tensors)
    if len(tensors) == 1:
        return tensors[0]
    return keras.layers.Concatenate(axis=-1, name="concat_features")(tensors)
