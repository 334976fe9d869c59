"""The ``vidpipe`` command: one entry point, each subcommand a module's own ``main(argv)``.

Subcommands import their heavy dependencies only when they run: the commands whose modules are slow to
import are parsed first with their light parsers (vidpipe.cli_args), so ``--help`` and argument errors
answer at once. ``--verbose`` (anywhere) shows TensorFlow's own log lines and INFO logging.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

COMMANDS = {
    "ingest": ("beam_pipelines.ingest",
               "raw video files -> YouTube-8M frame/video TFRecords, label stats, quarantine.csv"),
    "label-stats": ("beam_pipelines.label_stats_pipeline",
                    "label vocabulary, counts and class weights of existing records"),
    "train": ("vidpipe.apps.train_cli",
              "train a registered model on ingested records (checkpoints, TensorBoard, SavedModel)"),
    "evaluate": ("vidpipe.apps.evaluate",
                 "GAP/Hit@1/PERR/mAP of a submission CSV, or of a trained model on records"),
    "gate": ("vidpipe.apps.gate_cli",
             "record a candidate's metrics in the catalog and bless/promote it against the champion"),
    "predict": ("beam_pipelines.predict", "batch prediction on Beam -> Kaggle submission CSV (top 20 per video)"),
    "catalog": ("vidpipe.apps.catalog_cli", "show runs, model versions, metrics, blessings and the champion"),
    "segmentation": ("vidpipe.apps.segmentation_cli",
                     "action segmentation on MS-TCN data sets: train BiGRU/BiLSTM/MS-TCN, predict, evaluate"),
    "demo": ("vidpipe.apps.demo", "make the demo corpus (vidpipe/apps/demo/) and run the whole chain through Airflow"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: vidpipe [--verbose] <command> [options]   (vidpipe <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Runs a subcommand and exits with its status, skipping interpreter teardown (see vidpipe.process)."""
    from vidpipe.cli_args import FAST_PARSERS
    from vidpipe.layout import VERBOSE_ENV
    from vidpipe.process import exit_after_tft, exit_now, quiet_tensorflow, verbose

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--verbose" in argv:
        argv.remove("--verbose")
        os.environ[VERBOSE_ENV] = "1"
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        exit_now(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"vidpipe: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        exit_now(2)
    if command in FAST_PARSERS:
        try:
            FAST_PARSERS[command]().parse_known_args(rest)
        except ValueError as error:
            print(f"vidpipe: error: {error}", file=sys.stderr)
            exit_now(2)
    quiet_tensorflow()
    logging.basicConfig(level=logging.INFO if verbose() else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[command][0])
    exit_after_tft(lambda: module.main(rest))


if __name__ == "__main__":
    main()
