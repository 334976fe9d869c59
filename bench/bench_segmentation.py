"""BiGRU tagger vs MS-TCN on synthetic Breakfast-like data (bench/data_segmentation.py), same training budget.

Prints the data sizes, then acc / edit / F1@{10,25,50} on the test split and training and inference
frames per second of each model side by side, plus the predicted-to-true segment count ratio (over-segmentation
shows as a ratio well above 1).

Run: ``python bench/bench_segmentation.py [--videos 24] [--epochs 12] [--work DIR]`` (about 3-4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.data_segmentation import SyntheticSegmentationConfig, write_synthetic_breakfast  # noqa: E402

MODELS = {
    "bigru": ["model.units=64", "model.layers=2"],
    "mstcn": ["model.num_stages=4", "model.num_layers=10", "model.num_filters=64"],
}
KEYS = ("acc", "edit", "f1@10", "f1@25", "f1@50")


def segment_ratio(model, videos, batch_size: int) -> tuple[float, float]:
    """-> (predicted segments / true segments over the test videos, inference frames per second)."""
    from models.segmentation_train import predict_videos
    from vidpipe.segmentation.metrics import segments

    features = [video.features for video in videos]
    predict_videos(model, features[:1], batch_size)
    started = time.perf_counter()
    predictions = predict_videos(model, features, batch_size)
    seconds = time.perf_counter() - started
    predicted = sum(len(segments(labels)) for labels in predictions)
    true = sum(len(segments(video.labels)) for video in videos)
    return predicted / true, sum(len(f) for f in features) / seconds


def run_model(name: str, dataset_dir: str, work: str, epochs: int, extra: list[str]) -> dict:
    from models.segmentation_train import SegmentationExperiment, load_trained_model, train_segmentation
    from vidpipe.segmentation.mstcn_format import MstcnDataset

    overrides = MODELS[name] + [f"train.epochs={epochs}", f"eval_every={epochs}", "train.batch_size=4",
                                "train.decay_epochs=1000"] + extra
    experiment = SegmentationExperiment.create(name, overrides)
    started = time.perf_counter()
    result = train_segmentation(dataset_dir, os.path.join(work, name), experiment)
    wall = time.perf_counter() - started
    model, _, _ = load_trained_model(os.path.join(work, name))
    test_videos = list(MstcnDataset(dataset_dir).iterate("test"))
    ratio, inference_fps = segment_ratio(model, test_videos, 4)
    return {**{key: result.test_scores[key] for key in KEYS}, "train fr/s": result.train_frames_per_second,
            "infer fr/s": inference_fps, "seg ratio": ratio, "wall s": wall, "params": model.count_params()}


def print_table(rows: dict[str, dict]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{'model':<8}" + "".join(f"{column:>12}" for column in columns))
    for name, row in rows.items():
        print(f"{name:<8}" + "".join(f"{row[column]:>12.1f}" for column in columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--mean-action-frames", type=float, default=120.0)
    parser.add_argument("--feature-dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--smoothing-weight", type=float, default=0.15)
    parser.add_argument("--work", help="folder for data and runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="bench_segmentation_")
    cfg = SyntheticSegmentationConfig(videos=args.videos, people=args.videos // 6 or 1, feature_dim=args.feature_dim,
                                      activity_dims=min(8, args.feature_dim // 4),
                                      mean_action_frames=args.mean_action_frames)
    summary = write_synthetic_breakfast(os.path.join(work, "data"), cfg)
    print("data: " + ", ".join(f"{key}={summary[key]:.0f}" if isinstance(summary[key], float) else
                                f"{key}={summary[key]}" for key in summary if key != "output"))
    print(f"budget: {args.epochs} epochs, batch 4, Adam lr {args.learning_rate}, clip 1.0, same for both")
    rows = {}
    for name in MODELS:
        extra = [f"train.learning_rate={args.learning_rate}"]
        if name == "mstcn":
            extra.append(f"model.smoothing_weight={args.smoothing_weight}")
        rows[name] = run_model(name, os.path.join(work, "data"), work, args.epochs, extra)
        print(f"{name}: done in {rows[name]['wall s']:.0f} s", flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
