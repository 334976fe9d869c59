"""tf.data input pipeline: records -> (features dict, multi-hot labels [B, C] float32).

Frame level batches: {"video_id": [B] string, "rgb": [B, T, 1024], "audio": [B, T, 128],
"num_frames": [B] int32} with T = max_frames (frames past num_frames are zeros), or
T = num_sampled_frames when random frame sampling is on at training time.
Video level batches: {"video_id": [B] string, "mean_rgb": [B, 1024], "mean_audio": [B, 128]}.

Labels outside [0, num_classes) raise by default (``out_of_range_labels="raise"``): a model whose
output size comes from the training data cannot learn them, and silently dropping them would
hide a stale label_stats or a mixed-up data directory. Pass ``"drop"`` to ignore those labels
(the video is kept), e.g. for validation data that has classes the training data lacks.

The same per-record parsing serves the exported SavedModel (:func:`parse_serialized_batch`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Literal

import tensorflow as tf

from models.config import InputConfig
from models.features import NUM_FRAMES, VIDEO_ID, feature_size, mean_feature_name
from vidpipe import layout, records, schema

OutOfRange = Literal["raise", "drop"]
_RECHECK_BATCH = 1024


def record_files(file_pattern: str) -> list[str]:
    """Sorted files matching ``file_pattern``; none is an error."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"no record files match {file_pattern!r}")
    return files


def op_error_text(error: tf.errors.OpError) -> str:
    """TensorFlow's error message on one line, without its function-node prefix and op suffix."""
    text = " ".join(str(error.message).split())
    if text.startswith("{{function_node"):
        text = text.split("}}", 1)[-1].strip()
    return text.split(" [Op:", 1)[0].strip()


def record_batches(path: str, batch_size: int) -> Iterator[tf.Tensor]:
    """The serialized records of one TFRecord file in batches [<= batch_size] string, in file order.

    A truncated or corrupt file raises a one-line ValueError naming it, after the batches read before the damage.
    """
    batches = tf.data.TFRecordDataset(path).batch(batch_size).prefetch(1)
    try:
        yield from batches
    except tf.errors.DataLossError as error:
        raise ValueError(f"record file {path}: truncated or corrupt TFRecord file ({op_error_text(error)})") from None


@contextlib.contextmanager
def naming_unreadable_file(files: Sequence[str]) -> Iterator[None]:
    """Turns a DataLossError raised in the block while reading ``files`` (e.g. iterating :func:`make_dataset`)
    into the one-line ValueError of :func:`record_batches` naming the truncated or corrupt file, found by
    re-reading the files one at a time."""
    try:
        yield
    except tf.errors.DataLossError as error:
        for path in files:
            for _ in record_batches(path, _RECHECK_BATCH):
                pass
        raise ValueError(
            f"reading {len(files)} record files: truncated or corrupt TFRecord ({op_error_text(error)})") from None


def pad_or_truncate(frames: tf.Tensor, max_frames: int) -> tuple[tf.Tensor, tf.Tensor]:
    """frames [T, D] -> ([max_frames, D] zero padded or cut, num_frames = min(T, max_frames) int32)."""
    num_frames = tf.minimum(tf.shape(frames)[0], max_frames)
    kept = frames[:max_frames]
    padded = tf.pad(kept, [[0, max_frames - num_frames], [0, 0]])
    padded.set_shape([max_frames, frames.shape[-1]])
    return padded, num_frames


def sample_frame_indices(num_frames: tf.Tensor, num_samples: int, seed: tf.Tensor) -> tf.Tensor:
    """[num_samples] int32 indices drawn uniformly with replacement from [0, num_frames) (0 if none).

    ``seed`` is a stateless seed, int64 [2]: the same seed draws the same indices.
    """
    uniform = tf.random.stateless_uniform([num_samples], seed=seed)
    indices = tf.cast(uniform * tf.cast(num_frames, tf.float32), tf.int32)
    return tf.minimum(indices, tf.maximum(num_frames - 1, 0))


def _check_labels(labels: tf.Tensor, num_classes: int, video_id: tf.Tensor, mode: OutOfRange) -> tf.Tensor:
    labels = tf.cast(labels, tf.int64)
    in_range = tf.logical_and(labels >= 0, labels < num_classes)
    if mode == "drop":
        return tf.boolean_mask(labels, in_range)
    if mode != "raise":
        raise ValueError(f"out_of_range_labels must be 'raise' or 'drop', got {mode!r}")
    check = tf.debugging.Assert(
        tf.reduce_all(in_range),
        [f"labels outside [0, {num_classes}) (num_classes comes from label_stats max_label+1); "
         "video id and labels:", video_id, labels],
        summarize=20)
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def multi_hot(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """labels [L] int in [0, C) -> [C] float32 with ones at the labels (duplicates count once)."""
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    return tf.minimum(tf.reduce_sum(one_hot, axis=0), 1.0)


def multi_hot_batch(labels: tf.SparseTensor, num_classes: int) -> tf.Tensor:
    """Sparse labels [B, L] with values in [0, C) -> [B, C] float32."""
    rows = labels.indices[:, 0]
    indices = tf.stack([rows, tf.cast(labels.values, tf.int64)], axis=1)
    dense = tf.scatter_nd(indices, tf.ones_like(rows, tf.float32), [labels.dense_shape[0], num_classes])
    return tf.minimum(dense, 1.0)


def frame_features(serialized: tf.Tensor, feature_names: Sequence[str], max_frames: int,
                   sample_frames: int | None = None, sample_seed: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """One serialized SequenceExample -> {video_id, labels [L], <name> [T, D], num_frames}.

    T is ``max_frames`` (padded/truncated), or ``sample_frames`` frames drawn from the true
    frames when given (num_frames then becomes ``sample_frames``, or 0 for an empty video), with
    the stateless ``sample_seed`` (int64 [2]).
    """
    parsed = records.parse_frame_example(serialized)
    features = {VIDEO_ID: parsed[schema.VIDEO_ID], "labels": parsed[schema.LABELS]}
    num_frames = None
    for name in feature_names:
        padded, count = pad_or_truncate(parsed[name], max_frames)
        features[name] = padded
        num_frames = count if num_frames is None else tf.minimum(num_frames, count)
    if sample_frames:
        if sample_seed is None:
            raise ValueError("frame_features: sample_frames needs a sample_seed")
        indices = sample_frame_indices(num_frames, sample_frames, sample_seed)
        for name in feature_names:
            features[name] = tf.gather(features[name], indices)
        num_frames = tf.where(num_frames > 0, sample_frames, 0)
    features[NUM_FRAMES] = tf.cast(num_frames, tf.int32)
    return features


def video_features_batch(serialized: tf.Tensor, feature_names: Sequence[str]) -> dict[str, tf.Tensor]:
    """Serialized Examples [N] -> {video_id [N], labels SparseTensor [N, L], mean_<name> [N, D]}."""
    spec = {key: records.VIDEO_SPEC[key] for key in (schema.VIDEO_ID, schema.LABELS)}
    for name in feature_names:
        spec[mean_feature_name(name)] = records.VIDEO_SPEC[mean_feature_name(name)]
    parsed = tf.io.parse_example(serialized, spec)
    features = {VIDEO_ID: parsed[schema.VIDEO_ID], "labels": parsed[schema.LABELS]}
    for name in feature_names:
        features[mean_feature_name(name)] = parsed[mean_feature_name(name)]
    return features


def parse_serialized_batch(serialized: tf.Tensor, level: str, feature_names: Sequence[str],
                           max_frames: int) -> dict[str, tf.Tensor]:
    """Serialized records [N] -> model features with "video_id", padded as at evaluation time."""
    if layout.check_level(level) == layout.VIDEO_DIR:
        features = video_features_batch(serialized, feature_names)
        features.pop("labels")
        return features
    signature = {VIDEO_ID: tf.TensorSpec([], tf.string), NUM_FRAMES: tf.TensorSpec([], tf.int32)}
    for name in feature_names:
        signature[name] = tf.TensorSpec([max_frames, feature_size(name)], tf.float32)

    def parse_one(record):
        features = frame_features(record, feature_names, max_frames)
        return {key: features[key] for key in signature}

    return tf.map_fn(parse_one, serialized, fn_output_signature=signature)


def parse_labels_batch(serialized: tf.Tensor, level: str) -> tf.RaggedTensor:
    """Serialized records [N] -> labels as a RaggedTensor [N, (L)] int64."""
    spec = {schema.LABELS: tf.io.VarLenFeature(tf.int64)}
    if layout.check_level(level) == layout.VIDEO_DIR:
        labels = tf.io.parse_example(serialized, spec)[schema.LABELS]
    else:
        context, _, _ = tf.io.parse_sequence_example(serialized, context_features=spec)
        labels = context[schema.LABELS]
    return tf.RaggedTensor.from_sparse(labels)


def make_dataset(file_pattern: str, input_cfg: InputConfig, num_classes: int, training: bool, *,
                 seed: int | None = None, deterministic: bool = True,
                 out_of_range_labels: OutOfRange = "raise") -> tf.data.Dataset:
    """Records matching ``file_pattern`` -> batches of (features dict, labels [B, C] float32).

    Training shuffles the file order and the records (``input_cfg.shuffle_buffer`` serialized
    records, before parsing) with ``seed`` and, for frame level with ``sample_random_frames``,
    samples frames with a stateless seed derived from ``seed`` and the record's position. Files are
    read in a parallel interleave and parsed in parallel; with ``deterministic`` (the default) the
    output order is fixed, so a seed gives the same batches every time. ``deterministic=False``
    lets training take records in whichever order they are ready. Evaluation keeps the file order.
    ``input_cfg.level`` must be set ("frame" or "video").
    """
    level = input_cfg.level
    if level is None:
        raise ValueError("input_cfg.level is unset; set it to 'frame' or 'video' (models.train.resolve_config does)")
    layout.check_level(level)
    ordered = deterministic or not training
    if training and seed is None:
        seed = random.getrandbits(31)
    files = record_files(file_pattern)
    feature_names = tuple(input_cfg.feature_names)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    if training and input_cfg.shuffle_buffer > 1:
        dataset = dataset.shuffle(input_cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    if level == "frame":
        sample = input_cfg.num_sampled_frames if (training and input_cfg.sample_random_frames) else None

        def parse_frame(position, record):
            sample_seed = tf.stack([tf.constant(seed if seed is not None else 0, tf.int64), position])
            features = frame_features(record, feature_names, input_cfg.max_frames, sample, sample_seed)
            labels = _check_labels(features.pop("labels"), num_classes, features[VIDEO_ID], out_of_range_labels)
            return features, multi_hot(labels, num_classes)

        dataset = dataset.enumerate().map(parse_frame, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
        dataset = dataset.batch(input_cfg.batch_size)
    else:
        def parse_video(batch):
            features = video_features_batch(batch, feature_names)
            sparse = features.pop("labels")
            values = _check_labels(sparse.values, num_classes, features[VIDEO_ID], out_of_range_labels)
            if out_of_range_labels == "drop":
                keep = tf.logical_and(sparse.values >= 0, sparse.values < num_classes)
                sparse = tf.sparse.retain(sparse, keep)
            else:
                sparse = tf.SparseTensor(sparse.indices, values, sparse.dense_shape)
            return features, multi_hot_batch(sparse, num_classes)

        dataset = dataset.batch(input_cfg.batch_size)
        dataset = dataset.map(parse_video, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)
    return dataset.prefetch(tf.data.AUTOTUNE)
