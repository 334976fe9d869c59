"""``vidpipe train``: train a registered model on ingested records.

    vidpipe train --data DIR --model moe --train-dir DIR [--validation-data DIR] [--set train.max_steps=500 ...]

Resumes from the latest checkpoint in --train-dir; writes config.json, TensorBoard logs and a SavedModel.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from models import registry
from models.config import ConfigError, ExperimentConfig, apply_overrides


def build_config(model: str, overrides: list[str], config_path: str | None = None) -> ExperimentConfig:
    """Defaults for ``model`` (or a saved config), then dotted ``key=value`` overrides."""
    base = ExperimentConfig.load(config_path) if config_path else apply_overrides(ExperimentConfig(), [f"model_name={model}"])
    return apply_overrides(base, overrides)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vidpipe train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="models: " + ", ".join(sorted(registry.MODELS)))
    parser.add_argument("--data", required=True, help="training records (an ingest output: frame/, video/, label_stats/)")
    parser.add_argument("--train-dir", required=True, help="checkpoints, logs, config.json and export/ go here")
    parser.add_argument("--model", default="moe", choices=sorted(registry.MODELS), help="registered model name")
    parser.add_argument("--validation-data", help="records for the validation loss logged each epoch")
    parser.add_argument("--config", help="start from a saved config.json instead of the model's defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. input.batch_size=64, train.max_steps=500 or model.num_mixtures=4 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = parser.parse_args(argv)
    try:
        cfg = build_config(args.model, args.overrides, args.config)
    except ConfigError as error:
        parser.error(str(error))

    from models.train import train

    result = train(args.data, args.train_dir, cfg, validation_dir=args.validation_data, progress=not args.no_progress)
    report = asdict(result)
    report["config"] = result.config.to_dict()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
