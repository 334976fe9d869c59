"""YouTube-8M evaluation metrics (GAP@k, Hit@1, PERR, mAP), vectorized over sparse predictions.

The definitions are those of the youtube-8m starter code:

* GAP (global average precision): every video's top-k predictions pooled into one list, sorted by
  descending score; ``sum over ranks r where the item is a true label of (positives up to r) / r``,
  divided by the total number of true labels over all videos (labels never predicted included).
* Hit@1: fraction of videos whose highest-scoring prediction is a true label.
* PERR (precision at equal recall rate): for a video with ``L`` true labels, the fraction of its top
  ``L`` predictions that are true labels with score > 0 (a missing prediction has score 0); averaged
  over all videos, a video without labels counting 0.
* mAP: per class, the average precision over all top-k predictions of that class divided by the
  number of true labels of that class; ``map`` averages over classes with at least one true label,
  ``map_all_classes`` over all ``num_classes`` classes with label-less classes counting 0 (the figure
  the starter code prints).

Ties: the starter shuffles with seed 0 before sorting, which makes tie order arbitrary. Here the order
is fixed and does not depend on the order of the input rows or files: within a video by descending
score, then ascending class id; in the pooled GAP list by descending score, then ascending video id,
then ascending class id; within a class (mAP) by descending score, then ascending video id. The video
id is the ``video_ids`` string passed to :func:`compute_metrics` (compared as Python strings), so the
same predictions read in any row order (records in any file order, CSV rows in any order) give the
same metrics to the last bit; without ``video_ids`` a video's index stands in for its id.

Sparse inputs are triplets ``(video_idx [M], class_idx [M], score [M])``; each (video, class) pair may
occur once. Labels are :class:`SparseLabels` (unique (video, class) pairs) or a list with one array of
label ids per video.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Sequence

import numpy as np

_TOP_K_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class SparseLabels:
    """True labels as unique (video, class) pairs sorted by video then class: both int64 [P].

    Construction accepts pairs in any order with repeats and normalizes them.
    """

    video_idx: np.ndarray
    class_idx: np.ndarray

    def __post_init__(self):
        videos = _as_index_array(self.video_idx, "label video_idx")
        classes = _as_index_array(self.class_idx, "label class_idx")
        if videos.ndim != 1 or videos.shape != classes.shape:
            raise ValueError(f"label video_idx {videos.shape} and class_idx {classes.shape} must be 1-D of one length")
        if videos.size > 1:
            same_video = videos[1:] == videos[:-1]
            in_order = np.all((videos[1:] > videos[:-1]) | (same_video & (classes[1:] > classes[:-1])))
            if not in_order:
                order = np.lexsort((classes, videos))
                videos, classes = videos[order], classes[order]
                first = np.ones(videos.size, dtype=bool)
                first[1:] = (videos[1:] != videos[:-1]) | (classes[1:] != classes[:-1])
                videos, classes = videos[first], classes[first]
        object.__setattr__(self, "video_idx", videos)
        object.__setattr__(self, "class_idx", classes)

    @classmethod
    def from_lists(cls, labels: Sequence) -> SparseLabels:
        """One array-like of label ids per video (length num_videos) -> pairs."""
        arrays = [np.asarray(row, dtype=np.int64).reshape(-1) for row in labels]
        counts = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        videos = np.repeat(np.arange(len(arrays), dtype=np.int64), counts)
        classes = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(videos, classes)

    @classmethod
    def from_multi_hot(cls, multi_hot: np.ndarray) -> SparseLabels:
        """[N, C] matrix, entries > 0 are true labels -> pairs."""
        matrix = np.asarray(multi_hot)
        if matrix.ndim != 2:
            raise ValueError(f"multi-hot labels must be 2-D [N, C], got shape {matrix.shape}")
        videos, classes = np.nonzero(matrix > 0)
        return cls(videos.astype(np.int64), classes.astype(np.int64))

    def __len__(self) -> int:
        return int(self.video_idx.size)

    def counts_per_video(self, num_videos: int) -> np.ndarray:
        """int64 [num_videos]: number of true labels of each video."""
        return np.bincount(self.video_idx, minlength=num_videos)


def top_k_triplets(predictions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, C] scores -> each video's top min(k, C) classes as (video_idx [M], class_idx [M], score [M]).

    Output is grouped by ascending video, and within a video by descending score then ascending class
    id; among equal scores at the cut the lower class ids are kept, so the result is deterministic.
    """
    scores = np.asarray(predictions)
    if scores.ndim != 2:
        raise ValueError(f"predictions must be 2-D [N, C], got shape {scores.shape}")
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    num_videos, num_classes = scores.shape
    k = int(min(k, num_classes))
    if num_videos == 0 or num_classes == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=scores.dtype)
    chunk_rows = max(1, _TOP_K_CHUNK_ELEMENTS // num_classes)
    top_classes = np.empty((num_videos, k), dtype=np.int64)
    for begin in range(0, num_videos, chunk_rows):
        block = scores[begin:begin + chunk_rows]
        if not np.isfinite(block).all():
            bad_row = begin + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise ValueError(f"predictions row {bad_row} holds a non-finite score")
        top_classes[begin:begin + chunk_rows] = _top_k_block(block, k)
    top_scores = np.take_along_axis(scores, top_classes, axis=1)
    video_idx = np.repeat(np.arange(num_videos, dtype=np.int64), k)
    return video_idx, top_classes.reshape(-1), top_scores.reshape(-1)


def _top_k_block(block: np.ndarray, k: int) -> np.ndarray:
    """[n, C] finite scores -> [n, k] class ids, by descending score then ascending class id."""
    num_classes = block.shape[1]
    if k == num_classes:
        candidates = np.broadcast_to(np.arange(num_classes, dtype=np.int64), block.shape).copy()
    else:
        candidates = np.argpartition(block, num_classes - k, axis=1)[:, num_classes - k:]
    candidate_scores = np.take_along_axis(block, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    top = np.take_along_axis(candidates, order, axis=1)
    if k < num_classes:
        cut = candidate_scores.min(axis=1)
        ambiguous = np.flatnonzero((block >= cut[:, None]).sum(axis=1) > k)
        if ambiguous.size:
            top[ambiguous] = np.argsort(-block[ambiguous], axis=1, kind="stable")[:, :k]
    return top


def compute_metrics(
    video_idx,
    class_idx,
    score,
    labels: SparseLabels | Sequence,
    num_videos: int,
    top_k: int = 20,
    num_classes: int | None = None,
    video_ids: Sequence[str] | None = None,
) -> dict:
    """Sparse predictions and true labels -> YouTube-8M metrics.

    Args:
      video_idx, class_idx, score: [M] triplets, video_idx in [0, num_videos), class_idx >= 0, finite
        scores; each (video, class) at most once. Videos may hold any number of predictions.
      labels: SparseLabels, or a list of num_videos arrays of true label ids.
      num_videos: number of evaluated videos (videos without predictions or labels included).
      top_k: predictions per video that enter GAP and mAP (a video's highest scores). Hit@1 uses the
        single highest; PERR uses the top L of all supplied predictions, so pass at least max(L) per
        video for the starter's dense PERR (evaluate_dense does).
      num_classes: when given, class ids must be below it and ``map_all_classes`` is reported.
      video_ids: [num_videos] unique ids of the videos behind the indices; ties between videos are
        broken by these ids, so the result does not depend on which video got which index. Without
        them, by video index.

    Ties are broken by a fixed order instead of the starter's seeded shuffle: within a video by
    descending score then ascending class id; in the pooled GAP list by descending score, ascending
    video id, ascending class id; within a class (mAP) by descending score, ascending video id.

    Returns:
      dict with gap, hit_at_one, perr, map, map_all_classes (None without num_classes), num_videos,
      num_classes, num_classes_with_positives, num_positive_labels, num_predictions (after the top_k
      cut), top_k.
    """
    videos = _as_index_array(video_idx, "video_idx")
    classes = _as_index_array(class_idx, "class_idx")
    scores = np.asarray(score, dtype=np.float64)
    if not (videos.ndim == classes.ndim == scores.ndim == 1 and videos.size == classes.size == scores.size):
        raise ValueError(
            f"video_idx {videos.shape}, class_idx {classes.shape} and score {scores.shape} must be 1-D of one length")
    if not isinstance(num_videos, (int, np.integer)) or num_videos <= 0:
        raise ValueError(f"num_videos must be a positive integer, got {num_videos!r}")
    if not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    num_videos, top_k = int(num_videos), int(top_k)
    if videos.size and videos.max() >= num_videos:
        raise ValueError(f"video_idx {int(videos.max())} is out of range for num_videos={num_videos}")
    if not np.isfinite(scores).all():
        raise ValueError(f"score holds a non-finite value at position {int(np.flatnonzero(~np.isfinite(scores))[0])}")

    truth = labels if isinstance(labels, SparseLabels) else _labels_from_lists(labels, num_videos)
    if len(truth) and truth.video_idx.max() >= num_videos:
        raise ValueError(f"label video index {int(truth.video_idx.max())} is out of range for num_videos={num_videos}")
    if video_ids is not None:
        id_rank = _id_ranks(video_ids, num_videos)
        videos = id_rank[videos]
        truth = SparseLabels(id_rank[truth.video_idx], truth.class_idx)
    class_space = _class_space(classes, truth, num_classes)
    if num_videos * class_space >= 2**62:
        raise ValueError(f"num_videos * num_classes = {num_videos * class_space} is too large")

    pair_keys = videos * class_space + classes
    _reject_duplicate_pairs(pair_keys, class_space)
    is_positive = _is_member(pair_keys, truth.video_idx * class_space + truth.class_idx)
    score_rank, num_score_ranks = _descending_score_rank(scores)
    order = _sort_order((videos, num_videos), (score_rank, num_score_ranks), (classes, class_space))
    videos, classes, scores, score_rank, is_positive = (
        videos[order], classes[order], scores[order], score_rank[order], is_positive[order])
    rank_in_video = _rank_within_groups(videos)

    labels_per_video = truth.counts_per_video(num_videos)
    hit_at_one = np.count_nonzero(is_positive & (rank_in_video == 0)) / num_videos
    perr = _perr(videos, scores, is_positive, rank_in_video, labels_per_video, num_videos)

    kept = rank_in_video < top_k
    videos, classes, score_rank, is_positive = videos[kept], classes[kept], score_rank[kept], is_positive[kept]
    gap_order = _sort_order((score_rank, num_score_ranks), (videos, num_videos), (classes, class_space))
    gap = _average_precision_of_ranking(is_positive[gap_order], len(truth))
    positives_per_class = np.bincount(truth.class_idx, minlength=class_space)
    class_order = _sort_order((classes, class_space), (score_rank, num_score_ranks), (videos, num_videos))
    class_ap = _class_average_precision(classes[class_order], is_positive[class_order], positives_per_class)
    has_positives = positives_per_class > 0
    mean_ap = float(class_ap[has_positives].mean()) if has_positives.any() else 0.0
    map_all_classes = float(class_ap.mean()) if num_classes is not None else None

    return {
        "gap": float(gap),
        "hit_at_one": float(hit_at_one),
        "perr": float(perr),
        "map": mean_ap,
        "map_all_classes": map_all_classes,
        "num_videos": num_videos,
        "num_classes": int(num_classes) if num_classes is not None else class_space,
        "num_classes_with_positives": int(np.count_nonzero(has_positives)),
        "num_positive_labels": len(truth),
        "num_predictions": int(videos.size),
        "top_k": top_k,
    }


def evaluate_dense(predictions: np.ndarray, labels_multi_hot: np.ndarray, top_k: int = 20,
                   video_ids: Sequence[str] | None = None) -> dict:
    """[N, C] scores and [N, C] multi-hot labels (> 0 is true), optional video_ids [N] -> compute_metrics' dict.

    Each video contributes max(top_k, its label count) predictions so PERR sees every video's top L as
    in the starter's dense computation; GAP and mAP use the top_k.
    """
    scores = np.asarray(predictions)
    truth_matrix = np.asarray(labels_multi_hot)
    if scores.ndim != 2 or scores.shape != truth_matrix.shape:
        raise ValueError(f"predictions {scores.shape} and labels {truth_matrix.shape} must be equal 2-D shapes")
    truth = SparseLabels.from_multi_hot(truth_matrix)
    num_videos, num_classes = scores.shape
    most_labels = int(truth.counts_per_video(num_videos).max()) if num_videos else 0
    videos, classes, top_scores = top_k_triplets(scores, max(top_k, most_labels))
    return compute_metrics(videos, classes, top_scores, truth, num_videos, top_k=top_k, num_classes=num_classes,
                           video_ids=video_ids)


def _as_index_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.min() < 0:
        raise ValueError(f"{name} holds a negative value {int(array.min())}")
    return array


def _id_ranks(video_ids: Sequence[str], num_videos: int) -> np.ndarray:
    """Unique video ids [N] -> int64 [N]: each id's position in ascending id order."""
    ids = list(video_ids)
    if len(ids) != num_videos:
        raise ValueError(f"video_ids lists {len(ids)} videos, num_videos is {num_videos}")
    order = sorted(range(num_videos), key=ids.__getitem__)
    for previous, current in pairwise(order):
        if ids[previous] == ids[current]:
            raise ValueError(f"video_ids holds {ids[current]!r} more than once")
    ranks = np.empty(num_videos, dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(num_videos, dtype=np.int64)
    return ranks


def _labels_from_lists(labels: Sequence, num_videos: int) -> SparseLabels:
    if len(labels) != num_videos:
        raise ValueError(f"labels lists {len(labels)} videos, num_videos is {num_videos}")
    return SparseLabels.from_lists(labels)


def _class_space(classes: np.ndarray, truth: SparseLabels, num_classes: int | None) -> int:
    highest = max(int(classes.max()) if classes.size else -1, int(truth.class_idx.max()) if len(truth) else -1)
    if num_classes is None:
        return highest + 1 if highest >= 0 else 1
    if not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if highest >= num_classes:
        raise ValueError(f"class id {highest} is out of range for num_classes={num_classes}")
    return int(num_classes)


def _reject_duplicate_pairs(pair_keys: np.ndarray, class_space: int) -> None:
    sorted_keys = np.sort(pair_keys)
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if repeated.size:
        key = int(sorted_keys[repeated[0]])
        raise ValueError(f"(video {key // class_space}, class {key % class_space}) is predicted more than once")


def _is_member(keys: np.ndarray, sorted_unique_keys: np.ndarray) -> np.ndarray:
    if sorted_unique_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    positions = np.searchsorted(sorted_unique_keys, keys)
    return sorted_unique_keys[np.minimum(positions, sorted_unique_keys.size - 1)] == keys


def _group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """Sorted group ids [M] -> index of each item's group start [M]."""
    boundary = np.ones(sorted_groups.size, dtype=bool)
    boundary[1:] = sorted_groups[1:] != sorted_groups[:-1]
    starts = np.flatnonzero(boundary)
    return np.repeat(starts, np.diff(np.append(starts, sorted_groups.size)))


def _rank_within_groups(sorted_groups: np.ndarray) -> np.ndarray:
    """Sorted group ids [M] -> 0-based position of each item inside its group [M]."""
    return np.arange(sorted_groups.size) - _group_starts(sorted_groups)


def _perr(videos, scores, is_positive, rank_in_video, labels_per_video, num_videos) -> float:
    counted = is_positive & (scores > 0) & (rank_in_video < labels_per_video[videos])
    hits_per_video = np.bincount(videos[counted], minlength=num_videos)
    labelled = labels_per_video > 0
    return float(np.sum(hits_per_video[labelled] / labels_per_video[labelled]) / num_videos)


def _descending_score_rank(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Scores [M] -> (dense rank [M], 0 for the highest and equal scores sharing a rank; number of ranks)."""
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64), 1
    order = np.argsort(-scores)
    ranked = scores[order]
    sorted_rank = np.concatenate(([0], np.cumsum(ranked[1:] != ranked[:-1])))
    rank = np.empty(scores.size, dtype=np.int64)
    rank[order] = sorted_rank
    return rank, int(sorted_rank[-1]) + 1


def _sort_order(*columns: tuple[np.ndarray, int]) -> np.ndarray:
    """(values [M] in [0, bound), bound) columns, most significant first -> ascending order [M].

    Columns must jointly identify each item, so the order is unique; they are packed into one int64
    key when it fits and sorted with np.lexsort otherwise.
    """
    span = 1
    for _, bound in columns:
        span *= max(int(bound), 1)
    if span >= 2**63:
        return np.lexsort(tuple(values for values, _ in reversed(columns)))
    key = np.zeros(columns[0][0].size, dtype=np.int64)
    for values, bound in columns:
        key *= max(int(bound), 1)
        key += values
    return np.argsort(key)


def _average_precision_of_ranking(ranked_positive: np.ndarray, num_positive_labels: int) -> float:
    """bool [M] in rank order -> sum over positive ranks r of (positives up to r) / r, over num_positive_labels."""
    if num_positive_labels == 0:
        return 0.0
    positives_so_far = np.cumsum(ranked_positive)
    ranks = np.flatnonzero(ranked_positive) + 1
    return float(np.sum(positives_so_far[ranks - 1] / ranks) / num_positive_labels)


def _class_average_precision(ranked_classes, ranked_positive, positives_per_class) -> np.ndarray:
    """Items sorted by class then rank: class ids [M], bool [M] -> per class AP float64 [num_classes]."""
    group_start = _group_starts(ranked_classes)
    cumulative = np.cumsum(ranked_positive, dtype=np.int64)
    before_group = np.where(group_start > 0, cumulative[group_start - 1], 0)
    precision_at_item = (cumulative - before_group) / (np.arange(ranked_classes.size) - group_start + 1)
    ap_sum = np.bincount(ranked_classes[ranked_positive], weights=precision_at_item[ranked_positive],
                         minlength=positives_per_class.size)
    class_ap = np.zeros(positives_per_class.size, dtype=np.float64)
    has_positives = positives_per_class > 0
    class_ap[has_positives] = ap_sum[has_positives] / positives_per_class[has_positives]
    return class_ap
