"""Time the YouTube-8M metrics on 100k videos x 3862 classes x top 20: sparse core and Kaggle CSV path.

Run: python bench/bench_evaluate.py [--videos 100000] [--classes 3862] [--top-k 20]
Prints seconds; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from vidpipe.labels_csv import write_labels
from vidpipe.metrics import SparseLabels, compute_metrics, evaluate_dense
from vidpipe.submission import evaluate_submission, read_submission, write_submission


@dataclass(frozen=True)
class BenchConfig:
    num_videos: int = 100_000
    num_classes: int = 3862
    top_k: int = 20
    mean_labels: float = 3.0
    dense_videos: int = 10_000
    seed: int = 0


def random_predictions(config: BenchConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> class ids [N, k] distinct per video, scores [N, k] float64 in (0, 1)."""
    max_gap = config.num_classes // config.top_k
    gaps = rng.integers(1, max_gap + 1, size=(config.num_videos, config.top_k))
    start = rng.integers(0, config.num_classes, size=(config.num_videos, 1))
    classes = (start + np.cumsum(gaps, axis=1)) % config.num_classes
    return classes.astype(np.int64), rng.random((config.num_videos, config.top_k))


def random_labels(config: BenchConfig, classes: np.ndarray, rng: np.random.Generator) -> SparseLabels:
    """About mean_labels labels per video, half of them drawn from the video's predicted classes."""
    counts = rng.poisson(config.mean_labels, size=config.num_videos)
    videos = np.repeat(np.arange(config.num_videos), counts)
    from_predictions = classes[videos, rng.integers(0, config.top_k, size=videos.size)]
    anywhere = rng.integers(0, config.num_classes, size=videos.size)
    return SparseLabels(videos, np.where(rng.random(videos.size) < 0.5, from_predictions, anywhere))


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label:<52s} {time.perf_counter() - start:7.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=BenchConfig.num_videos)
    parser.add_argument("--classes", type=int, default=BenchConfig.num_classes)
    parser.add_argument("--top-k", type=int, default=BenchConfig.top_k)
    parser.add_argument("--dense-videos", type=int, default=BenchConfig.dense_videos)
    args = parser.parse_args()
    config = BenchConfig(num_videos=args.videos, num_classes=args.classes, top_k=args.top_k,
                         dense_videos=args.dense_videos)
    rng = np.random.default_rng(config.seed)
    classes, scores = random_predictions(config, rng)
    labels = random_labels(config, classes, rng)
    videos = np.repeat(np.arange(config.num_videos), config.top_k)
    print(f"{config.num_videos} videos x {config.num_classes} classes, top {config.top_k}, "
          f"{videos.size} predictions, {len(labels)} labels, {os.cpu_count()} CPUs")

    metrics = timed("compute_metrics (sparse core)", compute_metrics, videos, classes.reshape(-1),
                    scores.reshape(-1), labels, config.num_videos, top_k=config.top_k, num_classes=config.num_classes)
    print("  " + ", ".join(f"{name}={metrics[name]:.6f}" for name in ("gap", "hit_at_one", "perr", "map")))

    with tempfile.TemporaryDirectory() as directory:
        video_ids = [f"v{index:07d}" for index in range(config.num_videos)]
        predictions_path = os.path.join(directory, "predictions.csv")
        labels_path = os.path.join(directory, "labels.csv")
        timed("write_submission", write_submission, predictions_path, video_ids, classes, scores)
        bounds = np.cumsum(labels.counts_per_video(config.num_videos))[:-1]
        label_rows = dict(zip(video_ids, np.split(labels.class_idx, bounds)))
        timed("write_labels", write_labels, labels_path, label_rows)
        print(f"  files: predictions {os.path.getsize(predictions_path) / 2**20:.1f} MiB, "
              f"labels {os.path.getsize(labels_path) / 2**20:.1f} MiB")
        timed("read_submission", read_submission, predictions_path)
        from_csv = timed("evaluate_submission (read both + metrics)", evaluate_submission, predictions_path,
                         labels_path, top_k=config.top_k, num_classes=config.num_classes)
        print(f"  |gap(csv) - gap(arrays)| = {abs(from_csv['gap'] - metrics['gap']):.2e}")

    dense_predictions = rng.random((config.dense_videos, config.num_classes), dtype=np.float32)
    dense_labels = np.zeros(dense_predictions.shape, dtype=np.int8)
    dense_videos = labels.video_idx < config.dense_videos
    dense_labels[labels.video_idx[dense_videos], labels.class_idx[dense_videos]] = 1
    timed(f"evaluate_dense ({config.dense_videos} x {config.num_classes} float32)", evaluate_dense,
          dense_predictions, dense_labels, top_k=config.top_k)


if __name__ == "__main__":
    main()
