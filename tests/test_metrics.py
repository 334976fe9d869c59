"""YouTube-8M metrics and Kaggle CSV I/O: hand-computed values, a loop reference, CSV round trips, errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from vidpipe.kaggle_csv import SubmissionFormatError
from vidpipe.labels_csv import read_labels, write_labels
from vidpipe.metrics import SparseLabels, compute_metrics, evaluate_dense, top_k_triplets
from vidpipe.submission import (
    evaluate_submission,
    read_submission,
    write_submission,
)


def reference_average_precision(scores, actuals, total_positives):
    """The starter's ap_at_n(n=None): sort descending, sum positives_so_far / rank, divide by total."""
    if total_positives == 0 or len(scores) == 0:
        return 0.0
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    positives, total = 0, 0.0
    for rank, item in enumerate(ranked, start=1):
        if actuals[item]:
            positives += 1
            total += positives / rank / total_positives
    return total


def reference_dense_metrics(predictions, labels, top_k):
    """Loop implementation of the starter's dense definitions (continuous scores, so no ties)."""
    num_videos, num_classes = predictions.shape
    hit_at_one = sum(labels[v, int(np.argmax(predictions[v]))] for v in range(num_videos)) / num_videos

    perr_total = 0.0
    for v in range(num_videos):
        num_labels = int(labels[v].sum())
        if num_labels == 0:
            continue
        top = sorted(range(num_classes), key=lambda c: predictions[v, c], reverse=True)[:num_labels]
        perr_total += sum(1 for c in top if predictions[v, c] > 0 and labels[v, c]) / num_labels
    perr = perr_total / num_videos

    k = min(top_k, num_classes)
    per_class_scores = [[] for _ in range(num_classes)]
    per_class_actuals = [[] for _ in range(num_classes)]
    for v in range(num_videos):
        for c in sorted(range(num_classes), key=lambda c: predictions[v, c], reverse=True)[:k]:
            per_class_scores[c].append(predictions[v, c])
            per_class_actuals[c].append(labels[v, c] > 0)
    positives_per_class = [int(labels[:, c].sum()) for c in range(num_classes)]
    pooled_scores = [s for scores in per_class_scores for s in scores]
    pooled_actuals = [a for actuals in per_class_actuals for a in actuals]
    gap = reference_average_precision(pooled_scores, pooled_actuals, sum(positives_per_class))
    class_ap = [reference_average_precision(per_class_scores[c], per_class_actuals[c], positives_per_class[c])
                for c in range(num_classes)]
    with_positives = [ap for ap, n in zip(class_ap, positives_per_class) if n > 0]
    return {
        "gap": gap,
        "hit_at_one": hit_at_one,
        "perr": perr,
        "map": sum(with_positives) / len(with_positives),
        "map_all_classes": sum(class_ap) / num_classes,
    }


def reference_sparse_metrics(per_video_predictions, per_video_labels, top_k):
    """Loop definitions on ragged {class: score} dicts per video; missing predictions have score 0."""
    num_videos = len(per_video_predictions)
    hits, perr_total = 0, 0.0
    pooled_scores, pooled_actuals = [], []
    per_class = {}
    for predicted, truth in zip(per_video_predictions, per_video_labels):
        ranked = sorted(predicted, key=lambda c: predicted[c], reverse=True)
        if ranked and ranked[0] in truth:
            hits += 1
        if truth:
            perr_total += sum(1 for c in ranked[:len(truth)] if predicted[c] > 0 and c in truth) / len(truth)
        for c in ranked[:top_k]:
            pooled_scores.append(predicted[c])
            pooled_actuals.append(c in truth)
            per_class.setdefault(c, ([], []))
            per_class[c][0].append(predicted[c])
            per_class[c][1].append(c in truth)
    positives_per_class = {}
    for truth in per_video_labels:
        for c in truth:
            positives_per_class[c] = positives_per_class.get(c, 0) + 1
    class_ap = [reference_average_precision(*per_class.get(c, ([], [])), n) for c, n in positives_per_class.items()]
    return {
        "gap": reference_average_precision(pooled_scores, pooled_actuals, sum(positives_per_class.values())),
        "hit_at_one": hits / num_videos,
        "perr": perr_total / num_videos,
        "map": sum(class_ap) / len(class_ap),
    }


def random_multi_hot(rng, num_videos, num_classes, mean_labels=3.0, max_labels=9):
    labels = np.zeros((num_videos, num_classes), dtype=np.int32)
    for v in range(num_videos):
        count = min(int(rng.poisson(mean_labels)), max_labels)
        labels[v, rng.choice(num_classes - 3, size=count, replace=False)] = 1
    return labels


# --- hand-computed values -------------------------------------------------------------------------


def test_hand_computed_dense_case():
    predictions = np.array([
        [0.9, 0.8, 0.1, 0.05],
        [0.2, 0.7, 0.6, 0.3],
        [0.5, 0.4, 0.45, 0.35],
    ])
    labels = np.array([
        [1, 0, 1, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ])
    metrics = evaluate_dense(predictions, labels, top_k=2)
    # Pooled top-2: 0.9 T, 0.8 F, 0.7 F, 0.6 T, 0.5 F, 0.45 F with 3 positives in all.
    assert metrics["gap"] == pytest.approx((1 / 1 + 2 / 4) / 3, abs=1e-15)
    assert metrics["hit_at_one"] == pytest.approx(1 / 3, abs=1e-15)
    # Video 0: top 2 = {0, 1}, one true -> 1/2; video 1: top 1 = {1} -> 0; video 2 has no labels -> 0.
    assert metrics["perr"] == pytest.approx((1 / 2) / 3, abs=1e-15)
    # Class 0: [0.9 T, 0.5 F] / 1 positive = 1; class 2: [0.6 T, 0.45 F] / 2 positives = 0.5.
    assert metrics["map"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-15)
    assert metrics["map_all_classes"] == pytest.approx((1.0 + 0.5) / 4, abs=1e-15)
    assert metrics["num_classes_with_positives"] == 2
    assert metrics["num_positive_labels"] == 3
    assert metrics["num_predictions"] == 6
    assert metrics["num_videos"] == 3
    assert metrics["top_k"] == 2


def test_unpredicted_labels_count_in_gap_denominator():
    metrics = compute_metrics([0], [0], [1.0], [np.array([0, 1, 2])], num_videos=1)
    assert metrics["gap"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["hit_at_one"] == 1.0
    assert metrics["perr"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["map"] == pytest.approx((1.0 + 0 + 0) / 3, abs=1e-15)
    assert metrics["map_all_classes"] is None


def test_ties_follow_video_then_class_order():
    # Video 0 predicts class 0 (false) and video 1 class 0 (true), both 0.5: video 0 ranks first.
    metrics = compute_metrics([0, 1], [0, 0], [0.5, 0.5], [np.array([], dtype=int), np.array([0])], num_videos=2)
    assert metrics["gap"] == pytest.approx(1 / 2, abs=1e-15)
    assert metrics["map"] == pytest.approx(1 / 2, abs=1e-15)
    assert metrics["hit_at_one"] == pytest.approx(1 / 2, abs=1e-15)
    # Across videos the video index decides before the class id: video 0's class 2 (true) ranks first.
    across = compute_metrics([0, 1], [2, 1], [0.5, 0.5], [np.array([2]), np.array([], dtype=int)], num_videos=2)
    assert across["gap"] == 1.0
    # Within one video, equal scores put the lower class first: class 1 (false) is the top-1.
    within = compute_metrics([0, 0], [3, 1], [0.7, 0.7], [np.array([3])], num_videos=1)
    assert within["hit_at_one"] == 0.0
    assert within["perr"] == 0.0
    assert within["gap"] == pytest.approx(1 / 2, abs=1e-15)


def test_ties_between_videos_follow_the_video_id_not_the_index():
    # Same tie as above, but video 0 is "b" and video 1 is "a": "a" (true) now ranks first.
    labels = [np.array([], dtype=int), np.array([0])]
    by_id = compute_metrics([0, 1], [0, 0], [0.5, 0.5], labels, num_videos=2, video_ids=["b", "a"])
    assert by_id["gap"] == 1.0 and by_id["map"] == 1.0
    swapped = compute_metrics([0, 1], [0, 0], [0.5, 0.5], labels[::-1], num_videos=2, video_ids=["a", "b"])
    assert swapped == by_id
    with pytest.raises(ValueError, match="'a' more than once"):
        compute_metrics([0], [0], [0.5], labels, num_videos=2, video_ids=["a", "a"])
    with pytest.raises(ValueError, match="video_ids lists 1 videos"):
        compute_metrics([0], [0], [0.5], labels, num_videos=2, video_ids=["a"])


def tied_float32_predictions(rng, num_videos, num_classes):
    """[N, C] float32 probabilities with many exact ties: saturated 1.0 and 0.0, a few shared levels."""
    levels = np.array([0.0, 1.4e-45, 0.25, 0.5, 0.99999994, 1.0], dtype=np.float32)
    return levels[rng.integers(0, levels.size, (num_videos, num_classes))]


def test_metrics_with_exact_ties_do_not_depend_on_row_order():
    rng = np.random.default_rng(11)
    num_videos, num_classes = 60, 8
    predictions = tied_float32_predictions(rng, num_videos, num_classes)
    labels = random_multi_hot(rng, num_videos, num_classes + 3, mean_labels=2.0, max_labels=4)[:, :num_classes]
    video_ids = [f"v{rng.integers(10**6):06d}_{v}" for v in range(num_videos)]
    expected = evaluate_dense(predictions, labels, top_k=3, video_ids=video_ids)
    by_index = set()
    for seed in range(4):
        order = np.random.default_rng(seed).permutation(num_videos)
        shuffled = evaluate_dense(predictions[order], labels[order], top_k=3, video_ids=[video_ids[v] for v in order])
        assert shuffled == expected
        by_index.add(evaluate_dense(predictions[order], labels[order], top_k=3)["gap"])
    assert len(by_index) > 1, "the ties in this case must matter, or the test shows nothing"


def test_csv_evaluation_with_exact_ties_does_not_depend_on_file_order(tmp_path):
    rng = np.random.default_rng(5)
    num_videos, num_classes, top_k = 50, 10, 4
    predictions = tied_float32_predictions(rng, num_videos, num_classes)
    labels = random_multi_hot(rng, num_videos, num_classes + 3, mean_labels=2.5, max_labels=5)[:, :num_classes]
    video_ids = [f"clip-{v:03d}" for v in rng.permutation(num_videos)]
    _, classes, scores = top_k_triplets(predictions, num_classes)
    classes, scores = classes.reshape(num_videos, -1), scores.reshape(num_videos, -1)
    expected = evaluate_dense(predictions, labels, top_k=top_k, video_ids=video_ids)
    results = []
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(num_videos)
        label_order = np.random.default_rng(seed + 100).permutation(num_videos)
        predictions_path, labels_path = tmp_path / f"p{seed}.csv", tmp_path / f"l{seed}.csv"
        write_submission(predictions_path, [video_ids[v] for v in order], classes[order], scores[order])
        write_labels(labels_path, {video_ids[v]: np.flatnonzero(labels[v]) for v in label_order})
        results.append(evaluate_submission(predictions_path, labels_path, top_k=top_k, num_classes=num_classes))
    for result in results:
        assert result == {**expected, "num_videos_missing_predictions": 0}


def test_top_k_triplets_breaks_ties_by_class_id():
    predictions = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3, 0.3]])
    videos, classes, scores = top_k_triplets(predictions, 3)
    assert videos.tolist() == [0, 0, 0, 1, 1, 1]
    assert classes.tolist() == [1, 0, 2, 0, 1, 2]
    assert scores.tolist() == [0.9, 0.5, 0.5, 0.3, 0.3, 0.3]
    videos, classes, _ = top_k_triplets(predictions, 99)
    assert classes.tolist() == [1, 0, 2, 3, 4, 0, 1, 2, 3, 4]


def test_perr_ignores_zero_scores_and_missing_predictions():
    # L = 2; the true class 0 has score 0 and counts nothing; class 1 scores 0.5 -> 1/2.
    metrics = compute_metrics([0, 0], [0, 1], [0.0, 0.5], [np.array([0, 1])], num_videos=1)
    assert metrics["perr"] == pytest.approx(1 / 2, abs=1e-15)
    # L = 3 with a single prediction: the two missing ones have score 0 -> 1/3.
    sparse = compute_metrics([0], [4], [0.2], [np.array([1, 4, 7])], num_videos=1)
    assert sparse["perr"] == pytest.approx(1 / 3, abs=1e-15)


def test_dense_perr_looks_past_top_k_when_a_video_has_more_labels():
    predictions = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.65]])
    labels = np.array([[1, 1, 1, 1, 1, 0]])
    dense = evaluate_dense(predictions, labels, top_k=2)
    assert dense["perr"] == pytest.approx(4 / 5, abs=1e-15)
    assert dense["num_predictions"] == 2
    assert dense["gap"] == pytest.approx((1 + 1) / 5, abs=1e-15)
    videos, classes, scores = top_k_triplets(predictions, 2)
    assert compute_metrics(videos, classes, scores, SparseLabels.from_multi_hot(labels), 1)["perr"] == \
        pytest.approx(2 / 5, abs=1e-15)


def test_no_positives_gives_zero_metrics():
    metrics = evaluate_dense(np.array([[0.2, 0.8], [0.6, 0.4]]), np.zeros((2, 2)), top_k=1)
    assert metrics == {**metrics, "gap": 0.0, "hit_at_one": 0.0, "perr": 0.0, "map": 0.0, "map_all_classes": 0.0,
                       "num_classes_with_positives": 0}


def test_videos_without_predictions_count_in_all_means():
    labels = [np.array([0]), np.array([1]), np.array([2]), np.array([], dtype=int)]
    metrics = compute_metrics([0], [0], [0.9], labels, num_videos=4, num_classes=5)
    assert metrics["hit_at_one"] == 0.25
    assert metrics["perr"] == 0.25
    assert metrics["gap"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["map"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["map_all_classes"] == pytest.approx(1 / 5, abs=1e-15)


def test_sparse_labels_normalize_order_and_repeats():
    labels = SparseLabels(np.array([2, 0, 2, 0]), np.array([5, 1, 5, 0]))
    assert labels.video_idx.tolist() == [0, 0, 2]
    assert labels.class_idx.tolist() == [0, 1, 5]
    assert labels.counts_per_video(4).tolist() == [2, 0, 1, 0]
    assert len(SparseLabels.from_lists([[3, 3], [], [1]])) == 2


# --- loop reference -----------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [20, 5])
def test_dense_metrics_match_loop_reference(top_k):
    rng = np.random.default_rng(1234 + top_k)
    predictions = rng.random((200, 50))
    predictions[:3] -= 0.5
    labels = random_multi_hot(rng, 200, 50, mean_labels=3.5)
    expected = reference_dense_metrics(predictions, labels, top_k)
    metrics = evaluate_dense(predictions, labels, top_k=top_k)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name
    assert metrics["num_classes_with_positives"] == int((labels.sum(axis=0) > 0).sum())
    assert 0 < metrics["gap"] < 1


@pytest.mark.parametrize("top_k", [20, 5])
def test_sparse_metrics_match_loop_reference(top_k):
    rng = np.random.default_rng(99 + top_k)
    num_videos, num_classes = 150, 40
    per_video_predictions, per_video_labels = [], []
    for v in range(num_videos):
        count = int(rng.integers(0, 30))
        classes = rng.choice(num_classes, size=count, replace=False)
        per_video_predictions.append(dict(zip(classes.tolist(), (rng.random(count) - 0.1).tolist())))
        per_video_labels.append(set(rng.choice(num_classes, size=int(rng.integers(0, 6)), replace=False).tolist()))
    videos = np.concatenate([np.full(len(p), v) for v, p in enumerate(per_video_predictions)]).astype(np.int64)
    classes = np.concatenate([list(p) for p in per_video_predictions]).astype(np.int64)
    scores = np.concatenate([list(p.values()) for p in per_video_predictions])
    shuffle = rng.permutation(videos.size)
    metrics = compute_metrics(videos[shuffle], classes[shuffle], scores[shuffle],
                              [np.array(sorted(t), dtype=np.int64) for t in per_video_labels],
                              num_videos=num_videos, top_k=top_k)
    expected = reference_sparse_metrics(per_video_predictions, per_video_labels, top_k)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name


def test_compute_metrics_rejects_bad_triplets():
    labels = [np.array([0])]
    with pytest.raises(ValueError, match="more than once"):
        compute_metrics([0, 0], [1, 1], [0.5, 0.4], labels, num_videos=1)
    with pytest.raises(ValueError, match="out of range"):
        compute_metrics([1], [0], [0.5], labels, num_videos=1)
    with pytest.raises(ValueError, match="non-finite"):
        compute_metrics([0], [0], [np.nan], labels, num_videos=1)
    with pytest.raises(ValueError, match="out of range for num_classes"):
        compute_metrics([0], [7], [0.5], labels, num_videos=1, num_classes=5)
    with pytest.raises(ValueError, match="negative"):
        compute_metrics([0], [-1], [0.5], labels, num_videos=1)
    with pytest.raises(ValueError, match="top_k"):
        compute_metrics([0], [0], [0.5], labels, num_videos=1, top_k=0)


# --- CSV I/O -----------------------------------------------------------------------------------------


def grid_scores(rng, num_videos, num_classes):
    """Distinct scores i / (N*C)."""
    return rng.permutation(num_videos * num_classes).reshape(num_videos, num_classes) / (num_videos * num_classes)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_submission_round_trip_matches_dense_evaluation(tmp_path, suffix):
    rng = np.random.default_rng(7)
    num_videos, num_classes, top_k = 120, 40, 5
    predictions = grid_scores(rng, num_videos, num_classes)
    labels = random_multi_hot(rng, num_videos, num_classes, mean_labels=3.0, max_labels=8)
    video_ids = [f"vid{v:04d}" for v in range(num_videos)]
    per_video = max(top_k, int(labels.sum(axis=1).max()))
    _, classes, scores = top_k_triplets(predictions, per_video)
    classes, scores = classes.reshape(num_videos, per_video), scores.reshape(num_videos, per_video)
    reversed_rows = np.arange(num_videos)[::-1]
    predictions_path = tmp_path / f"predictions{suffix}"
    write_submission(predictions_path, [video_ids[v] for v in reversed_rows],
                     classes[reversed_rows, ::-1], scores[reversed_rows, ::-1])
    labels_path = tmp_path / f"labels{suffix}"
    order = rng.permutation(num_videos)
    write_labels(labels_path, {video_ids[v]: np.flatnonzero(labels[v]) for v in order})

    metrics = evaluate_submission(predictions_path, labels_path, top_k=top_k, num_classes=num_classes)
    expected = evaluate_dense(predictions, labels, top_k=top_k)
    for name in ("gap", "hit_at_one", "perr", "map", "map_all_classes"):
        assert metrics[name] == pytest.approx(expected[name], abs=1e-6), name
    assert metrics["num_videos_missing_predictions"] == 0
    assert 0 < metrics["gap"] < 1

    ids, video_idx, class_idx, score = read_submission(predictions_path)
    assert ids == [video_ids[v] for v in reversed_rows]
    first_row = score[video_idx == 0]
    assert np.all(np.diff(first_row) < 0)
    assert class_idx[video_idx == 0].tolist() == classes[num_videos - 1].tolist()
    read_back = read_labels(labels_path)
    assert list(read_back) == [video_ids[v] for v in order]
    assert read_back["vid0003"].tolist() == np.flatnonzero(labels[3]).tolist()


def test_submission_text_format(tmp_path):
    path = tmp_path / "s.csv"
    write_submission(path, ["a", "b"], np.array([[3, 1], [0, 2]]), np.array([[0.25, 0.5], [0.75, 0.75]]))
    assert path.read_text() == "VideoId,LabelConfidencePairs\na,1 0.5 3 0.25\nb,0 0.75 2 0.75\n"


def test_float32_scores_survive_the_csv_bit_for_bit(tmp_path):
    rng = np.random.default_rng(2)
    saturated = np.array([1.0, np.nextafter(np.float32(1), np.float32(0)), 1 - 2**-23, 0.0, 1.4e-45, 1.2e-38,
                          1 / 3, 0.1], dtype=np.float32)
    scores = np.concatenate([saturated, rng.random(9 * 7 - saturated.size, dtype=np.float32)]).reshape(9, 7)
    classes = np.argsort(rng.random((9, 7)), axis=1)
    video_ids = [f"v{i}" for i in range(9)]
    path = tmp_path / "s.csv"
    write_submission(path, video_ids, classes, scores)
    header, first = path.read_text().splitlines()[:2]
    assert header == "VideoId,LabelConfidencePairs"
    video_id, pairs = first.split(",")
    tokens = pairs.split()
    assert video_id == "v0" and [int(token) for token in tokens[0::2]] == classes[0][[0, 1, 2, 6, 5, 4, 3]].tolist()
    assert tokens[1::2] == ["1", "0.99999994", "0.999999881", "0.333333343", "1.19999998e-38", "1.40129846e-45", "0"]
    ids, video_idx, class_idx, score = read_submission(path)
    assert ids == video_ids and score.dtype == np.float64
    read_back = np.zeros((9, 7), dtype=np.float64)
    read_back[video_idx, class_idx] = score
    expected = np.zeros((9, 7), dtype=np.float32)
    np.put_along_axis(expected, classes, scores, axis=1)
    assert np.array_equal(read_back.astype(np.float32).view(np.uint32), expected.view(np.uint32))
    rewritten = tmp_path / "again.csv"
    write_submission(rewritten, ids, class_idx.reshape(9, 7), score.reshape(9, 7))
    assert rewritten.read_text() == path.read_text()


def test_missing_videos_count_as_unpredicted(tmp_path):
    predictions_path = tmp_path / "p.csv"
    predictions_path.write_text("VideoId,LabelConfidencePairs\nb,2 0.9 1 0.5\n")
    labels_path = tmp_path / "l.csv"
    labels_path.write_text("VideoId,Labels\na,1\nb,2 3\nc,\n")
    metrics = evaluate_submission(predictions_path, labels_path, top_k=20)
    assert metrics["num_videos"] == 3
    assert metrics["num_videos_missing_predictions"] == 2
    assert metrics["hit_at_one"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["gap"] == pytest.approx((1 / 1) / 3, abs=1e-15)
    # Video b: L = 2, top 2 = {2, 1}, one true -> 1/2; a and c give 0.
    assert metrics["perr"] == pytest.approx((1 / 2) / 3, abs=1e-15)
    assert read_labels(labels_path)["c"].size == 0


def test_unknown_prediction_ids_are_an_error(tmp_path):
    predictions_path = tmp_path / "p.csv"
    rows = "".join(f"x{i},1 0.5\n" for i in range(7))
    predictions_path.write_text("VideoId,LabelConfidencePairs\na,1 0.5\n" + rows)
    labels_path = tmp_path / "l.csv"
    labels_path.write_text("VideoId,Labels\na,1\n")
    with pytest.raises(SubmissionFormatError) as caught:
        evaluate_submission(predictions_path, labels_path)
    message = str(caught.value)
    assert "line 3" in message and "7 VideoId(s) not in labels file" in message
    assert "'x0', 'x1', 'x2', 'x3', 'x4'" in message and "'x5'" not in message


@pytest.mark.parametrize(
    "body, line, reason",
    [
        ("", 1, "empty file"),
        ("Id,Pairs\na,1 0.5\n", 1, "bad header"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,1 0.5 2\n", 3, "odd number of tokens"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\n\nb,1.5 0.5\n", 4, "non-integer label '1.5'"),
        ("VideoId,LabelConfidencePairs\na,1 0.5 x 0.2\n", 2, "non-integer label 'x'"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,2 0.1 3 abc\n", 3, "non-numeric score 'abc'"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,2 0.1\nc,3 nan\n", 4, "non-finite score 'nan'"),
        ("VideoId,LabelConfidencePairs\na,1 inf\n", 2, "non-finite score 'inf'"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,-2 0.1\n", 3, "negative label '-2'"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,2 0.1\na,3 0.2\n", 4, "duplicate VideoId 'a' (first on line 2)"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb,2 0.1 2 0.3\n", 3, "label 2 appears more than once"),
        ("VideoId,LabelConfidencePairs\na,1 0.5\nb 2 0.1\n", 3, "expected 2 comma-separated fields"),
        ("VideoId,LabelConfidencePairs\na,1 0.5,x\n", 2, "found 3"),
        ("VideoId,LabelConfidencePairs\n,1 0.5\n", 2, "empty VideoId"),
    ],
)
def test_malformed_submission_errors_name_line_and_reason(tmp_path, body, line, reason):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(SubmissionFormatError) as caught:
        read_submission(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"line {line}:" in message
    assert reason in message
    assert caught.value.line_number == line


@pytest.mark.parametrize(
    "body, line, reason",
    [
        ("   \n", 1, "empty file"),
        ("VideoId,LabelConfidencePairs\na,1\n", 1, "bad header"),
        ("VideoId,Labels\na,1 2\nb,3 x\n", 3, "non-integer label 'x'"),
        ("VideoId,Labels\na,1 2\nb,-3\n", 3, "negative label '-3'"),
        ("VideoId,Labels\na,1 2\nb,3\nb,4\n", 4, "duplicate VideoId 'b'"),
        ("VideoId,Labels\na,99999999999\n", 2, "exceeds"),
    ],
)
def test_malformed_label_errors_name_line_and_reason(tmp_path, body, line, reason):
    path = tmp_path / "labels.csv"
    path.write_text(body)
    with pytest.raises(SubmissionFormatError) as caught:
        read_labels(path)
    assert f"line {line}:" in str(caught.value) and reason in str(caught.value)


def test_reader_accepts_crlf_bom_gzip_and_blank_rows(tmp_path):
    path = tmp_path / "s.csv.gz"
    text = "\ufeffVideoId,LabelConfidencePairs\r\na,3 0.25 1 0.5\r\n\r\nb,\r\n"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    ids, video_idx, class_idx, score = read_submission(path)
    assert ids == ["a", "b"]
    assert video_idx.tolist() == [0, 0]
    assert class_idx.tolist() == [3, 1]
    assert score.tolist() == [0.25, 0.5]


def test_non_utf8_bytes_are_reported_with_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"VideoId,LabelConfidencePairs\na,1 0.5\nb\xff,1 0.5\n")
    with pytest.raises(SubmissionFormatError, match="line 3: not UTF-8"):
        read_submission(path)


def test_sort_order_falls_back_to_lexsort_when_keys_overflow():
    from vidpipe.metrics import _sort_order

    rng = np.random.default_rng(3)
    first, second = rng.integers(0, 5, 1000), rng.permutation(1000)
    packed = _sort_order((first, 5), (second, 1000))
    unpacked = _sort_order((first, 2**40), (second, 2**40))
    assert packed.tolist() == unpacked.tolist() == np.lexsort((second, first)).tolist()


def test_write_submission_rejects_unwritable_rows(tmp_path):
    path = tmp_path / "s.csv"
    with pytest.raises(ValueError, match="more than once"):
        write_submission(path, ["a"], np.array([[1, 1]]), np.array([[0.5, 0.4]]))
    with pytest.raises(ValueError, match="more than once"):
        write_submission(path, ["a", "a"], np.array([[1], [2]]), np.array([[0.5], [0.4]]))
    with pytest.raises(ValueError, match="comma"):
        write_submission(path, ["a,b"], np.array([[1]]), np.array([[0.5]]))
    with pytest.raises(ValueError, match="finite"):
        write_submission(path, ["a"], np.array([[1]]), np.array([[np.inf]]))
    assert not path.exists()
