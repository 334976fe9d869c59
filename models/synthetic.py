"""Small learnable YouTube-8M style data sets for tests and benchmarks.

Each class has a random prototype direction in the 1152-d rgb+audio space; a video's frames are
the sum of its labels' prototypes plus per-frame noise, quantized like the real data. Written in
the ingest layout: <data>/frame/*.tfrecord, <data>/video/*.tfrecord and <data>/label_stats/.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vidpipe import label_stats, layout, records, schema

FEATURE_DIM = schema.RGB_SIZE + schema.AUDIO_SIZE


@dataclass
class SyntheticData:
    data_dir: str
    video_ids: list[str]
    labels: list[list[int]]
    num_frames: list[int]


def synthetic_videos(num_videos: int, num_classes: int, min_frames: int = 4, max_frames: int = 12,
                     max_labels: int = 2, noise: float = 0.3, seed: int = 0, prototype_seed: int = 0):
    """Yields (video_id, labels, rgb uint8 [T, 1024], audio uint8 [T, 128]) for learnable toy videos.

    Data sets drawn with different ``seed`` and the same ``prototype_seed`` share their classes.
    """
    prototypes = np.random.default_rng(prototype_seed).normal(
        0.0, 0.6, size=(num_classes, FEATURE_DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    for index in range(num_videos):
        count = int(rng.integers(1, max_labels + 1))
        labels = sorted(int(label) for label in rng.choice(num_classes, size=count, replace=False))
        frames = int(rng.integers(min_frames, max_frames + 1))
        signal = prototypes[labels].sum(axis=0)
        values = signal[None, :] + rng.normal(0.0, noise, size=(frames, FEATURE_DIM)).astype(np.float32)
        quantized = schema.quantize(values)
        yield f"vid{index:05d}", labels, quantized[:, : schema.RGB_SIZE], quantized[:, schema.RGB_SIZE:]


def write_label_stats(data_dir: str, labels: list[list[int]]) -> None:
    """<data_dir>/label_stats/ for ``labels`` in the layout and with the weights that ingest writes."""
    counts = Counter(label for video_labels in labels for label in video_labels)
    label_stats.write_label_stats(label_stats.class_weight_rows(dict(counts)),
                                  sum(1 for video_labels in labels if video_labels),
                                  os.path.join(data_dir, label_stats.LABEL_STATS_DIR))


def write_synthetic_data(data_dir: str, num_videos: int = 64, num_classes: int = 8, num_files: int = 2,
                         min_frames: int = 4, max_frames: int = 12, seed: int = 0,
                         levels: tuple[str, ...] = ("frame", "video")) -> SyntheticData:
    """Write ``num_videos`` toy videos as frame and/or video records plus label stats under ``data_dir``."""
    writers = {}
    for level in levels:
        layout.check_level(level)
        os.makedirs(os.path.join(data_dir, level), exist_ok=True)
        writers[level] = [tf.io.TFRecordWriter(os.path.join(data_dir, level, f"part-{i:05d}{layout.RECORD_SUFFIX}"))
                          for i in range(num_files)]
    result = SyntheticData(data_dir, [], [], [])
    videos = synthetic_videos(num_videos, num_classes, min_frames, max_frames, seed=seed)
    for index, (video_id, labels, rgb, audio) in enumerate(videos):
        shard = index % num_files
        if "frame" in writers:
            writers["frame"][shard].write(records.frame_example(video_id, labels, rgb, audio).SerializeToString())
        if "video" in writers:
            mean_rgb = schema.dequantize(rgb).mean(axis=0)
            mean_audio = schema.dequantize(audio).mean(axis=0)
            writers["video"][shard].write(
                records.video_example(video_id, labels, mean_rgb, mean_audio).SerializeToString())
        result.video_ids.append(video_id)
        result.labels.append(labels)
        result.num_frames.append(int(rgb.shape[0]))
    for level_writers in writers.values():
        for writer in level_writers:
            writer.close()
    write_label_stats(data_dir, result.labels)
    return result


TINY_MODEL_OVERRIDES: dict[str, list[str]] = {
    "moe": ["model.num_mixtures=2"],
    "dbof": ["model.cluster_size=32", "model.hidden_size=16", "model.num_sampled_frames=6"],
    "rnn": ["model.units=16", "model.layers=2"],
    "lstm": ["model.units=16", "model.layers=1", "model.cell=gru", "model.bidirectional=true"],
}
"""Overrides that make each registered model small enough for tests on two CPU cores."""
