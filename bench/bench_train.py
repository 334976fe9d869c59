"""Training throughput per registered model on synthetic records, and whether training is input-bound.

For each model it measures, in examples per second:
  input     iterating ``models.inputs.make_dataset`` alone (parse, pad, shuffle, batch);
  step      the compiled training step on batches already in memory;
  pipeline  the training step fed by the input pipeline (what ``models.train.train`` does).
Training is input-bound when the input pipeline alone is slower than the step alone.

Sizes suit a 2-core CPU (tiny frame models), plus starter-size logistic/MoE (3862 classes,
batch 1024). Run: ``python bench/bench_train.py [--quick] [--json out.json]`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import inputs, losses, registry, synthetic, train  # noqa: E402
from models.config import apply_overrides  # noqa: E402
from vidpipe import layout  # noqa: E402


@dataclass
class Case:
    label: str
    model_name: str
    overrides: list[str]
    data: str  # "small" or "starter"


@dataclass
class Measurement:
    label: str
    level: str
    batch_size: int
    parameters: int
    input_examples_per_s: float
    step_examples_per_s: float
    pipeline_examples_per_s: float

    @property
    def input_bound(self) -> bool:
        return self.input_examples_per_s < self.step_examples_per_s


SMALL_CLASSES = 100
STARTER_CLASSES = 3862
SMALL_INPUT = ["input.max_frames=60", "input.batch_size=64", "input.shuffle_buffer=256"]
STARTER_INPUT = ["input.batch_size=1024", "input.shuffle_buffer=2048"]

CASES = [
    Case("logistic (small)", "logistic", SMALL_INPUT, "small"),
    Case("moe (small, 2 mixtures)", "moe", SMALL_INPUT, "small"),
    Case("frame_logistic", "frame_logistic", SMALL_INPUT, "small"),
    Case("dbof (256 clusters, 128 hidden, 20 sampled frames)", "dbof",
         ["model.cluster_size=256", "model.hidden_size=128", "model.num_sampled_frames=20", *SMALL_INPUT], "small"),
    Case("rnn/lstm (1x64 LSTM)", "rnn", ["model.units=64", "model.layers=1", *SMALL_INPUT], "small"),
    Case("rnn (1x64 GRU)", "rnn", ["model.units=64", "model.layers=1", "model.cell=gru", *SMALL_INPUT], "small"),
    Case("logistic (starter size)", "logistic", STARTER_INPUT, "starter"),
    Case("moe (starter size, 2 mixtures)", "moe", STARTER_INPUT, "starter"),
]


def write_data(root: str, quick: bool) -> dict[str, str]:
    small = os.path.join(root, "small")
    starter = os.path.join(root, "starter")
    synthetic.write_synthetic_data(small, num_videos=256 if quick else 768, num_classes=SMALL_CLASSES, num_files=4,
                                   min_frames=20, max_frames=60, seed=0)
    synthetic.write_synthetic_data(starter, num_videos=2048 if quick else 8192, num_classes=STARTER_CLASSES,
                                   num_files=4, min_frames=1, max_frames=2, seed=1, levels=("video",))
    return {"small": small, "starter": starter}


def _rate(examples: int, seconds: float) -> float:
    return examples / seconds if seconds > 0 else float("nan")


def measure(case: Case, data_dir: str, steps: int) -> Measurement:
    cfg = apply_overrides(registry.default_config(case.model_name), case.overrides)
    cfg = train.resolve_config(cfg, data_dir)
    pattern = layout.record_pattern(data_dir, cfg.input.level)

    def batches():
        return inputs.make_dataset(pattern, cfg.input, cfg.num_classes, training=True, seed=0).repeat()

    iterator = iter(batches())
    next(iterator)
    start, examples = time.perf_counter(), 0
    for _ in range(steps):
        _, labels = next(iterator)
        examples += int(labels.shape[0])
    input_rate = _rate(examples, time.perf_counter() - start)

    model = registry.build_model(cfg)
    optimizer = train.make_optimizer(cfg, mixed=False)
    step = train.make_train_step(model, optimizer, losses.CrossEntropyLoss(), cfg)
    iterator = iter(batches())
    cached = [next(iterator) for _ in range(4)]
    cached = [(features, labels) for features, labels in cached if labels.shape[0] == cfg.input.batch_size] or cached
    for features, labels in cached[:2]:
        step(features, labels)
    start, examples = time.perf_counter(), 0
    for index in range(steps):
        features, labels = cached[index % len(cached)]
        float(step(features, labels)[0])
        examples += int(labels.shape[0])
    step_rate = _rate(examples, time.perf_counter() - start)

    start, examples = time.perf_counter(), 0
    for _ in range(steps):
        features, labels = next(iterator)
        float(step(features, labels)[0])
        examples += int(labels.shape[0])
    pipeline_rate = _rate(examples, time.perf_counter() - start)

    return Measurement(case.label, cfg.input.level, cfg.input.batch_size, int(model.count_params()),
                       input_rate, step_rate, pipeline_rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records and steps (smoke run)")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    steps = 5 if args.quick else 20

    print(f"TensorFlow {tf.__version__}; CPUs: {os.cpu_count()}; GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as root:
        start = time.perf_counter()
        data_dirs = write_data(root, args.quick)
        print(f"wrote synthetic records in {time.perf_counter() - start:.1f}s")
        header = (f"{'model':52s} {'level':5s} {'batch':>5s} {'params':>10s} {'input ex/s':>11s} "
                  f"{'step ex/s':>10s} {'pipeline ex/s':>13s}  verdict")
        print(header)
        print("-" * len(header))
        for case in CASES:
            keras.backend.clear_session()
            result = measure(case, data_dirs[case.data], steps if case.data == "small" else max(3, steps // 4))
            results.append(result)
            verdict = "input-bound" if result.input_bound else "compute-bound"
            print(f"{result.label:52s} {result.level:5s} {result.batch_size:5d} {result.parameters:10d} "
                  f"{result.input_examples_per_s:11.0f} {result.step_examples_per_s:10.0f} "
                  f"{result.pipeline_examples_per_s:13.0f}  {verdict}", flush=True)
        print(f"total {time.perf_counter() - start:.0f}s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{**asdict(r), "input_bound": r.input_bound} for r in results], handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
