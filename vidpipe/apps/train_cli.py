"""``vidpipe train``: train a registered model on ingested records.

    vidpipe train --data DIR --model moe --train-dir DIR [--validation-data DIR] [--set train.max_steps=500 ...]

Resumes from the latest checkpoint in --train-dir; writes config.json, TensorBoard logs and a SavedModel.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from models.config import ExperimentConfig, apply_overrides
from vidpipe.cli_args import train_parser


def build_config(model: str, overrides: list[str], config_path: str | None = None) -> ExperimentConfig:
    """Defaults for ``model`` (or a saved config), then dotted ``key=value`` overrides."""
    if config_path:
        base = ExperimentConfig.load(config_path)
    else:
        base = apply_overrides(ExperimentConfig(), [f"model_name={model}"])
    return apply_overrides(base, overrides)


def main(argv=None) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    cfg = build_config(args.model, args.overrides, args.config)

    from models.train import train

    result = train(args.data, args.train_dir, cfg, validation_dir=args.validation_data, progress=not args.no_progress)
    report = asdict(result)
    report["config"] = result.config.to_dict()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
