"""``vidpipe evaluate``: YouTube-8M metrics of a Kaggle submission CSV, or of a trained model on records.

Both modes compute the same numbers from each video's top-k predictions (vidpipe.metrics), so a model
evaluated on records equals the evaluation of the submission CSV that model writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vidpipe import metrics


def evaluate_model(model_dir: str, data_dir: str, top_k: int = 20, batch_size: int = 256) -> dict:
    """A trained model (train_dir or export) on ``<data_dir>``'s records -> metrics dict."""
    from models.serving import predict_records

    video_ids, probabilities, labels = predict_records(model_dir, data_dir, batch_size)
    if not video_ids:
        raise ValueError(f"--data {data_dir}: no records to evaluate")
    video_idx, class_idx, score = metrics.top_k_triplets(probabilities, top_k)
    result = metrics.compute_metrics(video_idx, class_idx, score, labels, num_videos=len(video_ids), top_k=top_k,
                                     num_classes=probabilities.shape[1], video_ids=video_ids)
    result["model_dir"] = model_dir
    result["data"] = data_dir
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vidpipe evaluate",
        description="Print GAP, Hit@1, PERR and mAP as one JSON object. Either --predictions with --labels "
                    "(Kaggle YouTube-8M CSVs), or --model-dir with --data (records written by vidpipe ingest).")
    parser.add_argument("--predictions",
                        help="submission CSV: VideoId,LabelConfidencePairs ('label score label score ...')")
    parser.add_argument("--labels", help="ground truth CSV: VideoId,Labels (space-separated label ids)")
    parser.add_argument("--model-dir", help="a train dir (its latest export) or a SavedModel export dir")
    parser.add_argument("--data", help="directory with frame/ and video/ records")
    parser.add_argument("--top-k", type=int, default=20, help="predictions per video that count (default 20)")
    parser.add_argument("--num-classes", type=int, help="class count for map_all_classes in CSV mode")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    csv_mode = bool(args.predictions or args.labels)
    model_mode = bool(args.model_dir or args.data)
    if csv_mode == model_mode or (csv_mode and not (args.predictions and args.labels)) or (
            model_mode and not (args.model_dir and args.data)):
        parser.error("give either --predictions and --labels, or --model-dir and --data")
    if args.top_k <= 0:
        parser.error("--top-k must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.predictions:
            from vidpipe.submission import evaluate_submission

            result = evaluate_submission(args.predictions, args.labels, top_k=args.top_k, num_classes=args.num_classes)
        else:
            result = evaluate_model(args.model_dir, args.data, top_k=args.top_k)
    except (ValueError, FileNotFoundError) as error:
        print(f"vidpipe evaluate: {error}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, sort_keys=True, default=float)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)
