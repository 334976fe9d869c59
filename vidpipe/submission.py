"""Kaggle YouTube-8M prediction submissions: writing them and evaluating them against a labels file.

Submission: header ``VideoId,LabelConfidencePairs``; rows ``id,label score label score ...``.
Scores are written with 9 significant digits (``%.9g``), enough to read every float32 score back
exactly, so saturated probabilities stay distinct and a model's ranking survives the CSV.
The file format (gzip, blank lines, 1-based line numbers in errors) is vidpipe.kaggle_csv's; label files
are vidpipe.labels_csv's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from vidpipe.kaggle_csv import (
    Rows,
    SubmissionFormatError,
    check_video_id,
    open_text,
    parse_label_tokens,
    read_rows,
    reject_repeated_labels,
)
from vidpipe.labels_csv import read_label_rows
from vidpipe.metrics import SparseLabels, compute_metrics

PREDICTIONS_HEADER = ("VideoId", "LabelConfidencePairs")
SCORE_FORMAT = "%.9g"


def read_submission(path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Submission CSV -> (video_ids [N], video_idx [M] int64 into video_ids, class_idx [M] int64, score [M] float64).

    Pairs keep the file's order. Raises SubmissionFormatError on a bad header, an empty file, a
    duplicate VideoId, an odd number of tokens, a non-integer, negative, too large or repeated label,
    or a non-numeric or non-finite score.
    """
    video_ids, _, video_idx, class_idx, score = _read_submission_rows(path)
    return video_ids, video_idx, class_idx, score


def format_submission_rows(video_ids: Sequence[str], class_idx: np.ndarray, scores: np.ndarray,
                           score_format: str = SCORE_FORMAT) -> list[str]:
    """video_ids [N], class_idx [N, k], scores [N, k] -> N submission lines (no newline), highest score first.

    Each pair is written as ``"%d " + score_format``; ties keep the lower class id first. The default
    format reads back every float32 score bit for bit.
    """
    classes = np.asarray(class_idx)
    values = np.asarray(scores, dtype=np.float64)
    if classes.ndim != 2 or classes.shape != values.shape or classes.shape[0] != len(video_ids):
        raise ValueError(
            f"class_idx {classes.shape} and scores {values.shape} must be [N, k] with N = {len(video_ids)} videos")
    if classes.size and (not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0):
        raise ValueError("class_idx must hold non-negative integers")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")
    for video_id in video_ids:
        check_video_id(video_id)
    if len(set(video_ids)) != len(video_ids):
        raise ValueError("video_ids holds a VideoId more than once")
    sorted_classes = np.sort(classes, axis=1)
    if np.any(sorted_classes[:, 1:] == sorted_classes[:, :-1]):
        raise ValueError("a row of class_idx holds a class more than once")
    order = np.lexsort((classes, -values), axis=1)
    pairs = np.empty((classes.shape[0], 2 * classes.shape[1]), dtype=object)
    pairs[:, 0::2] = np.take_along_axis(classes, order, axis=1)
    pairs[:, 1::2] = np.take_along_axis(values, order, axis=1)
    row_format = " ".join(["%d " + score_format] * classes.shape[1])
    return [f"{video_id},{row_format % tuple(row)}" for video_id, row in zip(video_ids, pairs.tolist())]


def write_submission(path, video_ids: Sequence[str], class_idx: np.ndarray, scores: np.ndarray,
                     score_format: str = SCORE_FORMAT) -> None:
    """Write video_ids [N] with class_idx [N, k] and scores [N, k] as a submission (see format_submission_rows)."""
    lines = format_submission_rows(video_ids, class_idx, scores, score_format)
    with open_text(path, "w") as out:
        out.write(",".join(PREDICTIONS_HEADER) + "\n")
        out.write("".join(line + "\n" for line in lines))


def evaluate_submission(predictions_path, labels_path, top_k: int = 20, num_classes: int | None = None) -> dict:
    """Submission CSV and labels CSV, joined on VideoId -> compute_metrics' dict.

    Every video of the labels file is evaluated; one missing from the submission has no predictions.
    Ties are broken by VideoId (see vidpipe.metrics), so the row order of either file does not matter.
    A submission VideoId absent from the labels file raises SubmissionFormatError (count and examples).
    Adds ``num_videos_missing_predictions`` to the result.
    """
    label_ids, _, label_video_idx, label_class_idx = read_label_rows(labels_path)
    if not label_ids:
        raise ValueError(f"{os.fspath(labels_path)} lists no videos")
    predicted_ids, predicted_lines, video_idx, class_idx, score = _read_submission_rows(predictions_path)
    position = {video_id: index for index, video_id in enumerate(label_ids)}
    mapped = np.fromiter((position.get(video_id, -1) for video_id in predicted_ids), dtype=np.int64,
                         count=len(predicted_ids))
    unknown = np.flatnonzero(mapped < 0)
    if unknown.size:
        examples = ", ".join(repr(predicted_ids[i]) for i in unknown[:5])
        raise SubmissionFormatError(
            predictions_path, int(predicted_lines[unknown[0]]),
            f"{unknown.size} VideoId(s) not in labels file {os.fspath(labels_path)}, e.g. {examples}")
    metrics = compute_metrics(mapped[video_idx], class_idx, score, SparseLabels(label_video_idx, label_class_idx),
                              num_videos=len(label_ids), top_k=top_k, num_classes=num_classes, video_ids=label_ids)
    metrics["num_videos_missing_predictions"] = len(label_ids) - len(predicted_ids)
    return metrics


def _read_submission_rows(path):
    """-> (video_ids, line_numbers [N], video_idx [M], class_idx [M], score [M])."""
    rows = read_rows(path, PREDICTIONS_HEADER)
    odd = np.flatnonzero(rows.token_counts % 2)
    if odd.size:
        raise SubmissionFormatError(
            path, int(rows.line_numbers[odd[0]]),
            f"odd number of tokens ({int(rows.token_counts[odd[0]])}) in LabelConfidencePairs, "
            "expected label score pairs")
    label_tokens, score_tokens = rows.tokens[0::2], rows.tokens[1::2]
    class_idx = parse_label_tokens(path, rows, label_tokens, token_stride=2)
    score = _parse_scores(path, rows, score_tokens)
    video_idx = np.repeat(np.arange(len(rows.video_ids), dtype=np.int64), rows.token_counts // 2)
    reject_repeated_labels(path, rows, video_idx, class_idx, token_stride=2)
    return rows.video_ids, rows.line_numbers, video_idx, class_idx, score


def _parse_scores(path, rows: Rows, tokens: list[str]) -> np.ndarray:
    try:
        scores = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0, dtype=np.float64)
    except ValueError:
        scores = None
    if scores is not None and np.isfinite(scores).all():
        return scores
    for index, token in enumerate(tokens):
        try:
            value = float(token)
        except ValueError:
            raise SubmissionFormatError(path, rows.line_of_token(2 * index + 1),
                                        f"non-numeric score {token!r}") from None
        if not math.isfinite(value):
            raise SubmissionFormatError(path, rows.line_of_token(2 * index + 1), f"non-finite score {token!r}")
    raise SubmissionFormatError(path, int(rows.line_numbers[0]), "scores could not be parsed")
