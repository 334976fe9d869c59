"""Scores for action segmentation, clip classification and transcripts; pure numpy, all in percent.

Segmentation follows MS-TCN's ``eval.py`` exactly:

- frame accuracy is pooled over all frames of all videos (background frames included);
- a segment is a maximal run of equal labels; with background names given, their segments are dropped
  before the edit score and F1 (never from the accuracy);
- edit score = (1 - levenshtein(predicted segments, true segments) / max(#predicted, #true)) * 100, averaged
  over videos (100 when both have no segment, where eval.py would divide by zero);
- F1@τ: each predicted segment in order takes the true segment of its label with the highest IoU (the first
  on ties); it is a true positive if that IoU >= τ and the true segment was not hit before, else a false
  positive; false negatives are the true segments never hit. TP/FP/FN are summed over videos, then
  F1 = 2PR / (P + R) * 100 (0 when P + R = 0).

Frame labels are any 1-D sequence of hashable values of one kind (names or class ids).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_OVERLAPS = (0.1, 0.25, 0.5)


class Segment(NamedTuple):
    """A maximal run of one label over frames [start, end)."""

    label: Hashable
    start: int
    end: int


def _frame_array(frame_labels: Sequence | np.ndarray, what: str = "frame labels") -> np.ndarray:
    array = np.asarray(frame_labels)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of labels, got shape {array.shape}")
    return array


def segment_arrays(frame_labels: Sequence | np.ndarray, background: Iterable[Hashable] = ()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame labels [T] -> (labels [S], starts [S], ends [S]) of the non-background segments, ends exclusive."""
    array = _frame_array(frame_labels)
    if array.size == 0:
        return array[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    changes = np.flatnonzero(array[1:] != array[:-1]) + 1
    starts = np.concatenate([[0], changes]).astype(np.int64)
    ends = np.concatenate([changes, [array.size]]).astype(np.int64)
    labels = array[starts]
    background = set(background)
    if background:
        keep = np.asarray([label not in background for label in labels.tolist()], bool)
        labels, starts, ends = labels[keep], starts[keep], ends[keep]
    return labels, starts, ends


def segments(frame_labels: Sequence | np.ndarray, background: Iterable[Hashable] = ()) -> list[Segment]:
    """Frame labels [T] -> the maximal runs of equal labels, background runs left out."""
    labels, starts, ends = segment_arrays(frame_labels, background)
    return [Segment(label, int(start), int(end)) for label, start, end in zip(labels.tolist(), starts, ends)]


def transcript(frame_labels: Sequence | np.ndarray, background: Iterable[Hashable] = ()) -> list:
    """Frame labels [T] -> the ordered segment labels (the video's transcript)."""
    return segment_arrays(frame_labels, background)[0].tolist()


def _codes(*sequences: Sequence) -> list[np.ndarray]:
    """Maps the items of several sequences to shared integer codes (equal items, equal codes)."""
    table: dict = {}
    return [np.asarray([table.setdefault(item, len(table)) for item in sequence], np.int64)
            for sequence in sequences]


def levenshtein(first: Sequence, second: Sequence) -> int:
    """Edit distance (insertions, deletions, substitutions, all cost 1) between two sequences."""
    first_codes, second_codes = _codes(list(first), list(second))
    short, long = sorted((first_codes, second_codes), key=len)
    if short.size == 0:
        return int(long.size)
    columns = np.arange(long.size + 1)
    previous = columns.copy()
    for row, item in enumerate(short, start=1):
        best = np.minimum(previous[:-1] + (long != item), previous[1:] + 1)
        candidates = np.concatenate([[row], best])
        previous = np.minimum.accumulate(candidates - columns) + columns
    return int(previous[-1])


def edit_score(predicted: Sequence, truth: Sequence, background: Iterable[Hashable] = ()) -> float:
    """Segmental edit score of one video in percent: 100 * (1 - distance / longer segment count)."""
    background = list(background)
    predicted_segments = transcript(predicted, background)
    true_segments = transcript(truth, background)
    longest = max(len(predicted_segments), len(true_segments))
    if longest == 0:
        return 100.0
    return (1.0 - levenshtein(predicted_segments, true_segments) / longest) * 100.0


def f_score_counts(predicted: Sequence, truth: Sequence, overlap: float,
                   background: Iterable[Hashable] = ()) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one video's segments at IoU threshold ``overlap``."""
    if not 0.0 < overlap <= 1.0:
        raise ValueError(f"IoU threshold must be in (0, 1], got {overlap}")
    background = list(background)
    p_labels, p_starts, p_ends = segment_arrays(predicted, background)
    y_labels, y_starts, y_ends = segment_arrays(truth, background)
    if y_labels.size == 0:
        return 0, int(p_labels.size), 0
    if p_labels.size == 0:
        return 0, 0, int(y_labels.size)
    p_codes, y_codes = _codes(p_labels.tolist(), y_labels.tolist())
    intersection = np.minimum(p_ends[:, None], y_ends[None]) - np.maximum(p_starts[:, None], y_starts[None])
    union = np.maximum(p_ends[:, None], y_ends[None]) - np.minimum(p_starts[:, None], y_starts[None])
    iou = intersection / union * (p_codes[:, None] == y_codes[None])
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(best.size), best]
    hits = np.zeros(y_labels.size, bool)
    true_positives = 0
    for index, score in zip(best.tolist(), best_iou.tolist()):
        if score >= overlap and not hits[index]:
            hits[index] = True
            true_positives += 1
    return true_positives, int(p_labels.size) - true_positives, int(y_labels.size - hits.sum())


def f1_from_counts(true_positives: float, false_positives: float, false_negatives: float) -> float:
    """F1 in percent from summed counts; 0 when precision + recall is 0."""
    precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall) * 100.0


def overlap_key(overlap: float) -> str:
    """0.1 -> "f1@10", 0.25 -> "f1@25"."""
    return f"f1@{round(overlap * 100):d}"


class SegmentationScores:
    """Accumulates MS-TCN's scores over videos: ``add`` each video, then ``result``.

    ``result()`` -> {"acc", "edit", "f1@10", "f1@25", "f1@50" (one per overlap), "videos", "frames"}.
    """

    def __init__(self, overlaps: Sequence[float] = DEFAULT_OVERLAPS, background: Iterable[Hashable] = ()):
        self.overlaps = tuple(overlaps)
        for overlap in self.overlaps:
            if not 0.0 < overlap <= 1.0:
                raise ValueError(f"IoU threshold must be in (0, 1], got {overlap}")
        self.background = list(background)
        self.correct = 0
        self.frames = 0
        self.edit_sum = 0.0
        self.videos = 0
        self.counts = np.zeros((len(self.overlaps), 3), np.int64)

    def add(self, predicted: Sequence, truth: Sequence, video: str = "video") -> dict[str, float]:
        """Adds one video (predicted and true frame labels [T]); returns that video's own scores."""
        predicted = _frame_array(predicted, f"{video}: predictions")
        truth = _frame_array(truth, f"{video}: ground truth")
        if predicted.size != truth.size:
            raise ValueError(f"{video}: {predicted.size} predicted frames but {truth.size} ground-truth frames")
        if truth.size == 0:
            raise ValueError(f"{video}: no frames")
        correct = int(np.sum(predicted == truth))
        edit = edit_score(predicted, truth, self.background)
        counts = [f_score_counts(predicted, truth, overlap, self.background) for overlap in self.overlaps]
        self.correct += correct
        self.frames += truth.size
        self.edit_sum += edit
        self.videos += 1
        self.counts += np.asarray(counts, np.int64)
        scores = {"acc": 100.0 * correct / truth.size, "edit": edit}
        scores.update({overlap_key(o): f1_from_counts(*c) for o, c in zip(self.overlaps, counts)})
        return scores

    def result(self) -> dict[str, float]:
        if self.videos == 0:
            raise ValueError("no videos to score")
        scores: dict[str, float] = {"acc": 100.0 * self.correct / self.frames, "edit": self.edit_sum / self.videos}
        scores.update({overlap_key(o): f1_from_counts(*c.tolist()) for o, c in zip(self.overlaps, self.counts)})
        scores.update({"videos": self.videos, "frames": self.frames})
        return scores


def segmentation_scores(pairs: Iterable[tuple[Sequence, Sequence]], overlaps: Sequence[float] = DEFAULT_OVERLAPS,
                        background: Iterable[Hashable] = ()) -> dict[str, float]:
    """MS-TCN scores of (predicted [T], truth [T]) frame label pairs, one pair per video."""
    scores = SegmentationScores(overlaps, background)
    for index, (predicted, truth) in enumerate(pairs):
        scores.add(predicted, truth, video=f"video {index}")
    return scores.result()


def top_k_accuracy(scores: np.ndarray, labels: Sequence[int], k: int = 1) -> float:
    """Percent of rows whose label is among the k highest scores (ties ranked by lower class index).

    scores [N, C] (logits or probabilities), labels [N] in [0, C).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"expected scores [N, C] and labels [N], got {scores.shape} and {labels.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if labels.size == 0:
        raise ValueError("no examples to score")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got {labels.min()}..{labels.max()}")
    ranking = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return 100.0 * float(np.mean(np.any(ranking == labels[:, None], axis=1)))


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """int64 [C, C]: row = true class, column = predicted class."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    predictions = np.asarray(predictions, np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got {values.min()}..{values.max()}")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def classification_scores(scores: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{"top1", "top5", ..., "mean_class_accuracy"} in percent for clip scores [N, C] and labels [N].

    mean_class_accuracy averages the top-1 recall of the classes that occur in ``labels``.
    """
    scores = np.asarray(scores)
    result = {f"top{k}": top_k_accuracy(scores, labels, k) for k in ks}
    matrix = confusion_matrix(labels, np.argmax(scores, axis=1), scores.shape[1])
    support = matrix.sum(axis=1)
    present = support > 0
    result["mean_class_accuracy"] = 100.0 * float(np.mean(np.diag(matrix)[present] / support[present]))
    return result


def transcript_position_accuracy(predicted: Sequence[Sequence], truth: Sequence[Sequence]) -> np.ndarray:
    """Accuracy per output position [L] in percent, L = longest true transcript.

    Position p counts the videos whose true transcript has a p-th item; it is right when the predicted
    transcript has the same item there (a prediction that stopped early is wrong there).
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predicted transcripts but {len(truth)} true ones")
    longest = max((len(sequence) for sequence in truth), default=0)
    correct = np.zeros(longest)
    total = np.zeros(longest)
    for guess, target in zip(predicted, truth):
        guess, target = list(guess), list(target)
        for position, item in enumerate(target):
            total[position] += 1
            correct[position] += position < len(guess) and guess[position] == item
    return 100.0 * correct / np.maximum(total, 1)


def transcript_scores(predicted: Sequence[Sequence], truth: Sequence[Sequence]) -> dict:
    """Transcript quality over videos.

    -> {"edit_distance": mean Levenshtein distance, "edit": mean MS-TCN edit score (percent),
        "exact": percent of transcripts right in full, "position_accuracy": list per position (percent)}.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predicted transcripts but {len(truth)} true ones")
    if not truth:
        raise ValueError("no transcripts to score")
    distances, edits = [], []
    for guess, target in zip(predicted, truth):
        guess, target = list(guess), list(target)
        distance = levenshtein(guess, target)
        longest = max(len(guess), len(target))
        distances.append(distance)
        edits.append(100.0 if longest == 0 else (1.0 - distance / longest) * 100.0)
    return {
        "edit_distance": float(np.mean(distances)),
        "edit": float(np.mean(edits)),
        "exact": 100.0 * float(np.mean([d == 0 for d in distances])),
        "position_accuracy": transcript_position_accuracy(predicted, truth).tolist(),
    }
