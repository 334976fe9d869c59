"""``vidpipe segmentation``: train, predict with and evaluate action segmentation models on MS-TCN data sets.

    vidpipe segmentation train --dataset DIR [--split 1] --model {bigru,bilstm,mstcn} --train-dir DIR
                               [--set model.units=64 --set train.learning_rate=5e-4 ...] [--epochs N]
    vidpipe segmentation predict --dataset DIR [--split 1] --train-dir DIR --output DIR [--fps 15]
    vidpipe segmentation evaluate --ground-truth DIR --predictions DIR [--mapping FILE] [--background SIL]

``predict`` scores the test split and writes, through a staged folder swapped in whole::

    predictions/<video>.txt   MS-TCN's result format (one label per frame, full frame rate)
    segments/<video>.json     the predicted segments with start/end frames and seconds
    timelines/<video>.png     ground truth over prediction
    summary.png               all test videos, scores and per-class frame accuracy
    scores.json               acc, edit, f1@10/25/50 of the test split
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

import numpy as np

from models.segmentation_config import SEGMENTATION_MODELS

PREDICT_STAGE = "segmentation_predict"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidpipe segmentation",
                                     description="action segmentation on per-frame features (MS-TCN data sets)")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a BiGRU/BiLSTM tagger or MS-TCN (resumes from --train-dir)")
    train.add_argument("--dataset", required=True, metavar="DIR", help="MS-TCN data set folder")
    train.add_argument("--split", type=int, default=1, help="split number of splits/{train,test}.split<N>.bundle")
    train.add_argument("--model", required=True, choices=tuple(SEGMENTATION_MODELS))
    train.add_argument("--train-dir", required=True, metavar="DIR", help="checkpoints, logs and config.json")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="model.<key>, train.<key>, sample_rate or eval_every (repeatable)")
    train.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=N")
    train.add_argument("--progress", action="store_true", help="print one line per epoch")
    predict = commands.add_parser("predict", help="predict the test split with a trained model")
    predict.add_argument("--dataset", required=True, metavar="DIR")
    predict.add_argument("--split", type=int, default=1)
    predict.add_argument("--train-dir", required=True, metavar="DIR")
    predict.add_argument("--output", required=True, metavar="DIR")
    predict.add_argument("--fps", type=float, default=15.0, help="frame rate for the segment times in seconds")
    commands.add_parser("evaluate", add_help=False, help="MS-TCN scores of prediction files (see evaluate --help)")
    return parser


def run_train(args: argparse.Namespace) -> int:
    from models.segmentation_train import SegmentationExperiment, train_segmentation

    overrides = list(args.overrides) + ([f"train.epochs={args.epochs}"] if args.epochs is not None else [])
    experiment = SegmentationExperiment.create(args.model, overrides)
    result = train_segmentation(args.dataset, args.train_dir, experiment, args.split, progress=args.progress)
    print(json.dumps(asdict(result), indent=2, default=str))
    return 0


def predict_split(dataset_dir: str, split: int, train_dir: str) -> tuple[list[str], list[tuple[str, list, list]]]:
    """-> (class names, [(video, truth labels [T], predicted labels [T])]) of the test split at full frame rate."""
    from models.segmentation_train import load_trained_model, predict_videos
    from vidpipe.segmentation.mstcn_format import MstcnDataset

    model, experiment, info = load_trained_model(train_dir)
    dataset = MstcnDataset(dataset_dir)
    if dataset.class_names != info["class_names"]:
        raise ValueError(f"{dataset_dir}: mapping.txt differs from the classes {train_dir} was trained on")
    videos = list(dataset.iterate("test", split))
    for video in videos:
        if video.features.shape[1] != info["feature_dim"]:
            raise ValueError(f"{video.name}: features have D={video.features.shape[1]}, the model expects "
                             f"D={info['feature_dim']}")
    rate = experiment.sample_rate
    predicted = predict_videos(model, [video.features[::rate] for video in videos], experiment.train.batch_size)
    names = dataset.class_names
    rows = []
    for video, indices in zip(videos, predicted):
        full = np.repeat(indices, rate)[:len(video.labels)]
        rows.append((video.name, [names[i] for i in video.labels], [names[i] for i in full]))
    return names, rows


def write_predictions_folder(folder: str, class_names: list[str], rows: list[tuple[str, list, list]],
                             fps: float) -> dict:
    """Prediction files, segments JSON, timelines, summary and scores of ``rows`` into ``folder``."""
    from vidpipe.segmentation.metrics import SegmentationScores
    from vidpipe.segmentation.mstcn_format import write_predictions, write_segments_json, write_text_atomically
    from vidpipe.segmentation.plots import write_summary, write_timeline

    scores = SegmentationScores()
    for video, truth, predicted in rows:
        video_scores = scores.add(predicted, truth, video=video)
        write_predictions(os.path.join(folder, "predictions", f"{video}.txt"), predicted)
        write_segments_json(os.path.join(folder, "segments", f"{video}.json"), predicted, fps, video=video)
        write_timeline(os.path.join(folder, "timelines", f"{video}.png"), truth, predicted, class_names, title=video,
                       scores=video_scores)
    result = scores.result()
    write_summary(os.path.join(folder, "summary.png"), rows, class_names, scores=result)
    write_text_atomically(os.path.join(folder, "scores.json"), json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def run_predict(args: argparse.Namespace) -> int:
    from vidpipe.outputs import staged_dir

    if not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    class_names, rows = predict_split(args.dataset, args.split, args.train_dir)
    with staged_dir(args.output, PREDICT_STAGE) as folder:
        result = write_predictions_folder(str(folder), class_names, rows, args.fps)
    print(json.dumps({"output": os.path.abspath(args.output), **result}, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from vidpipe.segmentation.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "train":
        return run_train(args)
    return run_predict(args)


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
