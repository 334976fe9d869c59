"""Kaggle YouTube-8M CSV files: prediction submissions, label files and their evaluation.

Submission: header ``VideoId,LabelConfidencePairs``; rows ``id,label score label score ...``.
Labels:     header ``VideoId,Labels``; rows ``id,label label ...`` (an empty field means no labels).
Scores are written with 9 significant digits (``%.9g``), enough to read every float32 score back
exactly, so saturated probabilities stay distinct and a model's ranking survives the CSV.
Files ending in ``.gz`` are read and written gzip-compressed. Blank lines are skipped; line numbers in
errors are 1-based physical lines of the file.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from itertools import chain
from typing import Mapping, Sequence

import numpy as np

from vidpipe.metrics import SparseLabels, compute_metrics

PREDICTIONS_HEADER = ("VideoId", "LabelConfidencePairs")
SCORE_FORMAT = "%.9g"
LABELS_HEADER = ("VideoId", "Labels")
MAX_LABEL_ID = 2**31 - 1


class SubmissionFormatError(ValueError):
    """A malformed submission or label file: names the file, the 1-based line and what is wrong."""

    def __init__(self, path, line_number: int, reason: str):
        self.path = os.fspath(path)
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{self.path}, line {line_number}: {reason}")


@dataclass(frozen=True)
class _Rows:
    """Data rows of one file: ids [R], line numbers [R], tokens of the second field flattened, counts [R]."""

    video_ids: list[str]
    line_numbers: np.ndarray
    tokens: list[str]
    token_counts: np.ndarray

    def line_of_token(self, token_index: int) -> int:
        row = int(np.searchsorted(np.cumsum(self.token_counts), token_index, side="right"))
        return int(self.line_numbers[row])


def read_submission(path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Submission CSV -> (video_ids [N], video_idx [M] int64 into video_ids, class_idx [M] int64, score [M] float64).

    Pairs keep the file's order. Raises SubmissionFormatError on a bad header, an empty file, a
    duplicate VideoId, an odd number of tokens, a non-integer, negative, too large or repeated label,
    or a non-numeric or non-finite score.
    """
    video_ids, _, video_idx, class_idx, score = _read_submission_rows(path)
    return video_ids, video_idx, class_idx, score


def read_labels(path) -> dict[str, np.ndarray]:
    """Labels CSV -> {VideoId: int64 array of label ids in file order} (empty array for no labels).

    Also raises SubmissionFormatError for a VideoId that breaks vidpipe.schema.video_id_problem and for a
    label id outside [0, vidpipe.schema.MAX_CLASSES).
    """
    from vidpipe import schema

    video_ids, line_numbers, video_idx, class_idx = _read_label_rows(path)
    for video_id, line_number in zip(video_ids, line_numbers):
        if problem := schema.video_id_problem(video_id):
            raise SubmissionFormatError(path, int(line_number), problem)
    out_of_range = np.flatnonzero(class_idx >= schema.MAX_CLASSES)
    if out_of_range.size:
        index = int(out_of_range[0])
        raise SubmissionFormatError(path, int(line_numbers[video_idx[index]]),
                                    schema.label_id_problem(int(class_idx[index])))
    bounds = np.cumsum(np.bincount(video_idx, minlength=len(video_ids)))[:-1]
    return dict(zip(video_ids, np.split(class_idx, bounds))) if video_ids else {}


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
        _check_video_id(video_id)
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
    with _open_text(path, "w") as out:
        out.write(",".join(PREDICTIONS_HEADER) + "\n")
        out.write("".join(line + "\n" for line in lines))


def write_labels(path, labels: Mapping[str, Sequence[int]]) -> None:
    """Write {VideoId: label ids} as a ``VideoId,Labels`` CSV in the mapping's order."""
    lines = []
    for video_id, label_ids in labels.items():
        _check_video_id(video_id)
        lines.append(f"{video_id},{' '.join(str(int(label)) for label in label_ids)}\n")
    with _open_text(path, "w") as out:
        out.write(",".join(LABELS_HEADER) + "\n")
        out.write("".join(lines))


def evaluate_submission(predictions_path, labels_path, top_k: int = 20, num_classes: int | None = None) -> dict:
    """Submission CSV and labels CSV, joined on VideoId -> compute_metrics' dict.

    Every video of the labels file is evaluated; one missing from the submission has no predictions.
    Ties are broken by VideoId (see vidpipe.metrics), so the row order of either file does not matter.
    A submission VideoId absent from the labels file raises SubmissionFormatError (count and examples).
    Adds ``num_videos_missing_predictions`` to the result.
    """
    label_ids, _, label_video_idx, label_class_idx = _read_label_rows(labels_path)
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
    rows = _read_rows(path, PREDICTIONS_HEADER)
    odd = np.flatnonzero(rows.token_counts % 2)
    if odd.size:
        raise SubmissionFormatError(
            path, int(rows.line_numbers[odd[0]]),
            f"odd number of tokens ({int(rows.token_counts[odd[0]])}) in LabelConfidencePairs, "
            "expected label score pairs")
    label_tokens, score_tokens = rows.tokens[0::2], rows.tokens[1::2]
    class_idx = _parse_labels(path, rows, label_tokens, token_stride=2)
    score = _parse_scores(path, rows, score_tokens)
    video_idx = np.repeat(np.arange(len(rows.video_ids), dtype=np.int64), rows.token_counts // 2)
    _reject_repeated_labels(path, rows, video_idx, class_idx, token_stride=2)
    return rows.video_ids, rows.line_numbers, video_idx, class_idx, score


def _read_label_rows(path):
    """-> (video_ids, line_numbers [N], video_idx [P], class_idx [P])."""
    rows = _read_rows(path, LABELS_HEADER)
    class_idx = _parse_labels(path, rows, rows.tokens, token_stride=1)
    video_idx = np.repeat(np.arange(len(rows.video_ids), dtype=np.int64), rows.token_counts)
    _reject_repeated_labels(path, rows, video_idx, class_idx, token_stride=1)
    return rows.video_ids, rows.line_numbers, video_idx, class_idx


def _read_rows(path, header: tuple[str, str]) -> _Rows:
    text = _read_text(path)
    if not text.strip():
        raise SubmissionFormatError(path, 1, f"empty file, expected header {','.join(header)!r}")
    lines = text.split("\n")
    found = tuple(field.strip() for field in lines[0].split(","))
    if found != header:
        raise SubmissionFormatError(path, 1, f"bad header {lines[0].strip()!r}, expected {','.join(header)!r}")
    video_ids: list[str] = []
    line_numbers: list[int] = []
    fields: list[list[str]] = []
    first_line: dict[str, int] = {}
    for line_number, line in enumerate(lines[1:], start=2):
        video_id, comma, rest = line.partition(",")
        if not comma:
            if not line.strip():
                continue
            raise SubmissionFormatError(path, line_number, f"expected 2 comma-separated fields ({header[0]},"
                                        f"{header[1]}), found 1")
        if "," in rest:
            raise SubmissionFormatError(path, line_number,
                                        f"expected 2 comma-separated fields, found {line.count(',') + 1}")
        video_id = video_id.strip()
        if not video_id:
            raise SubmissionFormatError(path, line_number, "empty VideoId")
        if video_id in first_line:
            raise SubmissionFormatError(path, line_number,
                                        f"duplicate VideoId {video_id!r} (first on line {first_line[video_id]})")
        first_line[video_id] = line_number
        video_ids.append(video_id)
        line_numbers.append(line_number)
        fields.append(rest.split())
    counts = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    return _Rows(video_ids, np.asarray(line_numbers, dtype=np.int64), list(chain.from_iterable(fields)), counts)


def _read_text(path) -> str:
    with open(path, "rb") as raw:
        data = raw.read()
    if os.fspath(path).endswith(".gz"):
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = data[:error.start].count(b"\n") + 1
        raise SubmissionFormatError(path, line_number, f"not UTF-8 text ({error.reason})") from None


def _check_video_id(video_id: str) -> None:
    if not isinstance(video_id, str):
        raise ValueError(f"VideoId {video_id!r} must be a str")
    if not video_id or video_id != video_id.strip() or any(ch in video_id for ch in ",\n\r"):
        raise ValueError(f"VideoId {video_id!r} is empty, padded or holds a comma or line break")


def _open_text(path, mode: str):
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")


def _parse_labels(path, rows: _Rows, tokens: list[str], token_stride: int) -> np.ndarray:
    try:
        labels = np.array(tokens, dtype=np.int64) if tokens else np.zeros(0, dtype=np.int64)
    except (ValueError, OverflowError):
        labels = None
    if labels is not None and (labels.size == 0 or (labels.min() >= 0 and labels.max() <= MAX_LABEL_ID)):
        return labels
    for index, token in enumerate(tokens):
        reason = _label_problem(token)
        if reason:
            raise SubmissionFormatError(path, rows.line_of_token(index * token_stride), reason)
    raise SubmissionFormatError(path, int(rows.line_numbers[0]), "labels could not be parsed")


def _label_problem(token: str) -> str | None:
    try:
        value = int(token)
    except ValueError:
        return f"non-integer label {token!r}"
    if value < 0:
        return f"negative label {token!r}"
    if value > MAX_LABEL_ID:
        return f"label {token!r} exceeds {MAX_LABEL_ID}"
    return None


def _parse_scores(path, rows: _Rows, tokens: list[str]) -> np.ndarray:
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


def _reject_repeated_labels(path, rows: _Rows, video_idx: np.ndarray, class_idx: np.ndarray,
                            token_stride: int) -> None:
    keys = video_idx * (MAX_LABEL_ID + 1) + class_idx
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if repeated.size:
        index = int(order[repeated + 1].min())
        raise SubmissionFormatError(path, rows.line_of_token(index * token_stride),
                                    f"label {int(class_idx[index])} appears more than once")
