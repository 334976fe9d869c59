"""Batch prediction benchmark: videos/s of `vidpipe predict` (Beam DirectRunner) per model level.

    .venv/bin/python bench/bench_predict.py [--videos 4000]

Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from beam_pipelines import predict  # noqa: E402
from models.synthetic import write_synthetic_data  # noqa: E402
from models.train import train  # noqa: E402
from vidpipe.apps.train_cli import build_config  # noqa: E402

CASES = {
    "moe (video level, 3862 classes)": ("moe", "video", ["num_classes=3862", "input.batch_size=64"]),
    "dbof (frame level, 256 clusters, 3862 classes)": (
        "dbof", "frame",
        ["num_classes=3862", "input.batch_size=32", "model.cluster_size=256", "model.hidden_size=256"]),
}

RUNNER_MODES = {
    "DirectRunner in-process": [],
    "DirectRunner 2 worker processes (incl. start)": ["--direct_num_workers", "2", "--direct_running_mode",
                                                      "multi_processing"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="vidpipe-bench-predict-")
    print(f"machine: {os.cpu_count()} CPU cores, no GPU; {args.videos} synthetic videos per case, top 20 per video")
    for name, (model, level, overrides) in CASES.items():
        data_dir = os.path.join(work, level)
        if not os.path.isdir(data_dir):
            write_synthetic_data(data_dir, num_videos=args.videos, num_classes=50, num_files=4, levels=(level,))
        train_dir = os.path.join(work, model)
        train(data_dir, train_dir, build_config(model, overrides + ["train.max_steps=2"]), progress=False)
        for mode, options in RUNNER_MODES.items():
            report = predict.run(["--data", data_dir, "--model-dir", train_dir,
                                  "--output", os.path.join(work, f"{model}.csv")] + options)
            print(f"  {name:<48} {mode:<38} {report['videos']} videos in {report['seconds']:6.2f} s = "
                  f"{report['videos_per_second']:8.1f} videos/s")


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
