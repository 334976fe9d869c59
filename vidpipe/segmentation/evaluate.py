"""``vidpipe segmentation evaluate``: MS-TCN's frame accuracy, edit score and F1@{10,25,50} of prediction files.

Prints one JSON object: {"acc", "edit", "f1@10", "f1@25", "f1@50", "videos", "frames"} (scores in percent).
The videos are those of ``--videos`` (an MS-TCN split bundle) or else every file in ``--predictions``.
"""

from __future__ import annotations

import argparse
import json
import sys

from vidpipe.segmentation.metrics import DEFAULT_OVERLAPS, SegmentationScores
from vidpipe.segmentation.mstcn_format import evaluation_pairs, read_bundle, read_mapping


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vidpipe segmentation evaluate",
        description="Frame accuracy, segmental edit score and F1@{10,25,50} (MS-TCN's eval.py) of per-frame "
                    "predictions against MS-TCN ground-truth files.")
    parser.add_argument("--ground-truth", required=True, metavar="DIR",
                        help="groundTruth folder: <video>.txt, one label per frame")
    parser.add_argument("--predictions", required=True, metavar="DIR",
                        help="one file per video (<video> or <video>.txt): MS-TCN's result format or one label "
                             "per line")
    parser.add_argument("--mapping", metavar="mapping.txt",
                        help="'<index> <name>' per line; every label must be one of these names")
    parser.add_argument("--background", nargs="+", default=[], metavar="NAME",
                        help="labels whose segments the edit score and F1 leave out (e.g. SIL); accuracy keeps them")
    parser.add_argument("--videos", metavar="BUNDLE",
                        help="split bundle naming the videos to score (default: every file in --predictions)")
    return parser.parse_args(argv)


def evaluate(ground_truth_dir: str, predictions_dir: str, mapping: str | None = None,
             background: list[str] | tuple[str, ...] = (), videos: list[str] | None = None) -> dict[str, float]:
    """MS-TCN scores over the videos; ValueError naming the video for a missing file, length or unknown label."""
    names = set(read_mapping(mapping)) if mapping else None
    if names is not None:
        unknown = sorted(set(background) - names)
        if unknown:
            raise ValueError(f"background label(s) {unknown} are not in {mapping}")
    scores = SegmentationScores(DEFAULT_OVERLAPS, background)
    for video, predicted, truth in evaluation_pairs(ground_truth_dir, predictions_dir, videos):
        if names is not None:
            for what, labels in (("prediction", predicted), ("ground truth", truth)):
                unknown = sorted(set(labels) - names)
                if unknown:
                    raise ValueError(f"{video}: {what} label(s) {unknown[:5]} are not in {mapping}")
        scores.add(predicted, truth, video=video)
    return scores.result()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    videos = read_bundle(args.videos) if args.videos else None
    result = evaluate(args.ground_truth, args.predictions, args.mapping, args.background, videos)
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
