"""Build and parse YouTube-8M records (tf.train.SequenceExample / tf.train.Example).

Names and sizes come from :mod:`vidpipe.schema`; nothing here invents its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from vidpipe import schema


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def frame_example(video_id: str, labels: Sequence[int], rgb: np.ndarray, audio: np.ndarray) -> tf.train.SequenceExample:
    """rgb: uint8 [T, 1024], audio: uint8 [T, 128] -> SequenceExample with T frames."""
    rgb = np.asarray(rgb, np.uint8)
    audio = np.asarray(audio, np.uint8)
    if rgb.shape[1:] != (schema.RGB_SIZE,) or audio.shape[1:] != (schema.AUDIO_SIZE,):
        raise ValueError(f"{video_id}: rgb {rgb.shape} / audio {audio.shape} do not match the schema")
    if rgb.shape[0] != audio.shape[0]:
        raise ValueError(f"{video_id}: {rgb.shape[0]} rgb frames but {audio.shape[0]} audio frames")
    context = tf.train.Features(feature={
        schema.VIDEO_ID: _bytes([video_id.encode()]),
        schema.LABELS: _ints(labels),
    })
    lists = tf.train.FeatureLists(feature_list={
        schema.RGB: tf.train.FeatureList(feature=[_bytes([row.tobytes()]) for row in rgb]),
        schema.AUDIO: tf.train.FeatureList(feature=[_bytes([row.tobytes()]) for row in audio]),
    })
    return tf.train.SequenceExample(context=context, feature_lists=lists)


def video_example(video_id: str, labels: Sequence[int], mean_rgb: np.ndarray,
                  mean_audio: np.ndarray) -> tf.train.Example:
    """mean_rgb: float [1024], mean_audio: float [128] -> Example."""
    return tf.train.Example(features=tf.train.Features(feature={
        schema.VIDEO_ID: _bytes([video_id.encode()]),
        schema.LABELS: _ints(labels),
        schema.MEAN_RGB: _floats(mean_rgb),
        schema.MEAN_AUDIO: _floats(mean_audio),
    }))


FRAME_CONTEXT_SPEC = {
    schema.VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
    schema.LABELS: tf.io.VarLenFeature(tf.int64),
}
FRAME_SEQUENCE_SPEC = {
    spec.name: tf.io.FixedLenSequenceFeature([], tf.string) for spec in schema.FEATURES
}
VIDEO_SPEC = {
    schema.VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
    schema.LABELS: tf.io.VarLenFeature(tf.int64),
    **{spec.mean_name: tf.io.FixedLenFeature([spec.size], tf.float32) for spec in schema.FEATURES},
}


def parse_frame_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Scalar string -> {id: string, labels: int64 [L], rgb: float32 [T, 1024], audio: float32 [T, 128]}.

    Frame features are dequantized with the dataset's constants.
    """
    context, lists = tf.io.parse_single_sequence_example(
        serialized, context_features=FRAME_CONTEXT_SPEC, sequence_features=FRAME_SEQUENCE_SPEC)
    parsed = {schema.VIDEO_ID: context[schema.VIDEO_ID], schema.LABELS: tf.sparse.to_dense(context[schema.LABELS])}
    for spec in schema.FEATURES:
        raw = tf.reshape(tf.io.decode_raw(lists[spec.name], tf.uint8), [-1, spec.size])
        parsed[spec.name] = tf.cast(raw, tf.float32) * schema.DEQUANTIZE_SCALE + schema.DEQUANTIZE_BIAS
    return parsed


def parse_video_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Scalar string -> {id, labels: int64 [L], mean_rgb: float32 [1024], mean_audio: float32 [128]}."""
    parsed = tf.io.parse_single_example(serialized, VIDEO_SPEC)
    parsed[schema.LABELS] = tf.sparse.to_dense(parsed[schema.LABELS])
    return parsed
