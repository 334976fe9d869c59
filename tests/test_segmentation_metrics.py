"""MS-TCN segmentation scores, clip classification scores and transcript scores on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from vidpipe.segmentation.metrics import (
    Segment,
    SegmentationScores,
    classification_scores,
    confusion_matrix,
    edit_score,
    f1_from_counts,
    f_score_counts,
    levenshtein,
    segmentation_scores,
    segments,
    top_k_accuracy,
    transcript,
    transcript_position_accuracy,
    transcript_scores,
)


def frames(*runs: tuple[str, int]) -> list[str]:
    return [label for label, count in runs for _ in range(count)]


def test_segments_include_the_last_run_up_to_the_last_frame():
    assert segments(list("aabbba")) == [Segment("a", 0, 2), Segment("b", 2, 5), Segment("a", 5, 6)]
    assert segments(list("aaab")) == [Segment("a", 0, 3), Segment("b", 3, 4)]
    assert segments(["x"]) == [Segment("x", 0, 1)]
    assert segments([]) == []


def test_segments_leave_out_background_runs_only_when_named():
    labels = frames(("SIL", 1), ("a", 2), ("SIL", 1), ("b", 1))
    assert segments(labels, background=["SIL"]) == [Segment("a", 1, 3), Segment("b", 4, 5)]
    assert transcript(labels) == ["SIL", "a", "SIL", "b"]
    assert transcript(labels, background=["SIL"]) == ["a", "b"]
    assert transcript([3, 3, 1, 1, 3], background=[1]) == [3, 3]


def _reference_levenshtein(first, second):
    table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i in range(len(first) + 1):
        table[i][0] = i
    for j in range(len(second) + 1):
        table[0][j] = j
    for i in range(1, len(first) + 1):
        for j in range(1, len(second) + 1):
            cost = 0 if first[i - 1] == second[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
    return table[-1][-1]


def test_levenshtein_known_values_and_random_sequences():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein([], ["a", "b"]) == 2
    assert levenshtein(["a", "b"], []) == 2
    assert levenshtein([], []) == 0
    assert levenshtein(["pour", "stir"], ["pour", "stir"]) == 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        first = rng.integers(0, 4, size=rng.integers(0, 12)).tolist()
        second = rng.integers(0, 4, size=rng.integers(0, 12)).tolist()
        assert levenshtein(first, second) == _reference_levenshtein(first, second)
        assert levenshtein(second, first) == levenshtein(first, second)


def test_edit_score_normalises_by_the_longer_segment_list():
    predicted = frames(("a", 2), ("b", 1), ("c", 3))
    truth = frames(("a", 3), ("c", 3))
    assert edit_score(predicted, truth) == pytest.approx(100 * (1 - 1 / 3))
    assert edit_score(truth, truth) == 100.0


def test_edit_score_with_and_without_background():
    predicted = frames(("SIL", 2), ("a", 3), ("SIL", 1), ("b", 4))
    truth = frames(("a", 5), ("b", 5))
    assert edit_score(predicted, truth, background=["SIL"]) == 100.0
    assert edit_score(predicted, truth) == pytest.approx(50.0)  # 2 insertions over 4 segments
    assert edit_score(["SIL"] * 4, ["SIL"] * 4, background=["SIL"]) == 100.0


def test_f1_counts_depend_on_the_last_segment_overlap():
    truth = frames(("a", 4), ("b", 4), ("c", 2))
    predicted = frames(("a", 4), ("b", 3), ("c", 3))
    # IoU: a 4/4, b 3/4, c (last segment) 2/3
    assert f_score_counts(predicted, truth, 0.5) == (3, 0, 0)
    assert f_score_counts(predicted, truth, 0.7) == (2, 1, 1)
    assert f_score_counts(predicted, truth, 0.75) == (2, 1, 1)
    assert f_score_counts(predicted, truth, 0.8) == (1, 2, 2)
    assert f1_from_counts(2, 1, 1) == pytest.approx(200 / 3)


def test_f1_duplicate_predicted_segments_hit_a_true_segment_once():
    truth = frames(("a", 10))
    predicted = frames(("a", 4), ("b", 2), ("a", 4))
    assert f_score_counts(predicted, truth, 0.1) == (1, 2, 0)
    assert f1_from_counts(1, 2, 0) == pytest.approx(50.0)
    assert f_score_counts(predicted, truth, 0.5) == (0, 3, 1)
    assert f1_from_counts(0, 3, 1) == 0.0


def test_f1_a_segment_takes_its_best_true_segment_in_order_even_when_hit_before():
    truth = frames(("a", 10), ("b", 10))
    predicted = frames(("a", 2), ("c", 1), ("a", 7), ("b", 10))
    # a[0,2) IoU .2 claims true a at tau .1; a[3,10) (IoU .7) then finds it taken: a false positive
    assert f_score_counts(predicted, truth, 0.1) == (2, 2, 0)
    # at tau .25 the first a misses, the second one hits
    assert f_score_counts(predicted, truth, 0.25) == (2, 2, 0)
    assert f_score_counts(predicted, truth, 0.75) == (1, 3, 1)


def test_f1_background_segments_are_left_out_when_named():
    truth = frames(("SIL", 3), ("a", 4), ("SIL", 3))
    predicted = frames(("b", 3), ("a", 4), ("SIL", 3))
    assert f_score_counts(predicted, truth, 0.5, background=["SIL"]) == (1, 1, 0)
    assert f_score_counts(predicted, truth, 0.5) == (2, 1, 1)
    assert f_score_counts(["SIL"] * 3, ["SIL"] * 3, 0.5, background=["SIL"]) == (0, 0, 0)
    assert f_score_counts(["a"] * 3, ["SIL"] * 3, 0.5, background=["SIL"]) == (0, 1, 0)


def test_scores_pool_frames_average_edit_and_sum_counts_over_videos():
    first_truth = frames(("a", 5), ("b", 5))
    first_predicted = frames(("a", 4), ("b", 6))       # 9 of 10 frames, edit 100, IoU .8 and 5/6
    second_truth = frames(("c", 2))
    second_predicted = frames(("d", 2))                 # 0 of 2 frames, edit 0, one FP one FN
    result = segmentation_scores([(first_predicted, first_truth), (second_predicted, second_truth)])
    assert result["acc"] == pytest.approx(100 * 9 / 12)
    assert result["edit"] == pytest.approx(50.0)
    # tau .1, .25, .5: TP 2, FP 1, FN 1 over both videos -> P = R = 2/3
    for key in ("f1@10", "f1@25", "f1@50"):
        assert result[key] == pytest.approx(200 / 3)
    assert result["videos"] == 2 and result["frames"] == 12


def test_accuracy_keeps_background_frames():
    scores = SegmentationScores(background=["SIL"])
    video = scores.add(frames(("a", 3), ("SIL", 1)), frames(("a", 2), ("SIL", 2)), video="v1")
    assert video["acc"] == pytest.approx(75.0)
    assert scores.result()["acc"] == pytest.approx(75.0)


def _reference_counts(predicted, truth, overlap, background):
    def runs(labels):
        found, start = [], 0
        for index in range(1, len(labels) + 1):
            if index == len(labels) or labels[index] != labels[start]:
                if labels[start] not in background:
                    found.append((labels[start], start, index))
                start = index
        return found

    p, y = runs(predicted), runs(truth)
    hits = [False] * len(y)
    tp = fp = 0
    for label, start, end in p:
        best, best_iou = 0, -np.inf
        for index, (true_label, true_start, true_end) in enumerate(y):
            iou = (min(end, true_end) - max(start, true_start)) / (max(end, true_end) - min(start, true_start))
            iou = iou if label == true_label else 0.0
            if iou > best_iou:
                best, best_iou = index, iou
        if y and best_iou >= overlap and not hits[best]:
            hits[best] = True
            tp += 1
        else:
            fp += 1
    return tp, fp, len(y) - sum(hits)


@pytest.mark.parametrize("background", [(), ("s",)])
def test_f1_counts_match_a_plain_loop_on_random_videos(background):
    rng = np.random.default_rng(1)
    for _ in range(100):
        length = int(rng.integers(1, 60))
        truth = np.repeat(rng.choice(list("abs"), size=length), rng.integers(1, 6, size=length)).tolist()
        predicted = list(truth)
        for index in rng.choice(len(truth), size=len(truth) // 5, replace=False):
            predicted[index] = str(rng.choice(list("abs")))
        for overlap in (0.1, 0.25, 0.5):
            assert f_score_counts(predicted, truth, overlap, background) == _reference_counts(
                predicted, truth, overlap, set(background))


def test_bad_input_names_the_video():
    scores = SegmentationScores()
    with pytest.raises(ValueError, match="P03_cereals: 3 predicted frames but 2 ground-truth frames"):
        scores.add(["a", "a", "b"], ["a", "a"], video="P03_cereals")
    with pytest.raises(ValueError, match="no videos"):
        scores.result()
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        f_score_counts(["a"], ["a"], 0.0)


def test_top_k_accuracy_and_confusion_matrix():
    scores = np.array([[0.1, 0.5, 0.4],
                       [0.7, 0.2, 0.1],
                       [0.3, 0.3, 0.4],
                       [0.2, 0.2, 0.6]])
    labels = np.array([2, 0, 1, 1])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(25.0)
    # rows 2 and 3: classes 0 and 1 tie; the lower index ranks first, so class 1 is third
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(50.0)
    assert top_k_accuracy(scores, labels, 3) == pytest.approx(100.0)
    matrix = confusion_matrix(labels, scores.argmax(axis=1), 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 2], [0, 1, 0]])
    result = classification_scores(scores, labels, ks=(1, 2))
    assert result["top1"] == pytest.approx(25.0) and result["top2"] == pytest.approx(50.0)
    assert result["mean_class_accuracy"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        top_k_accuracy(scores, np.array([0, 1, 2, 3]), 1)


def test_transcript_position_accuracy_and_scores():
    predicted = [[1, 2, 3], [1, 3], []]
    truth = [[1, 2, 3], [1, 2], [4]]
    np.testing.assert_allclose(transcript_position_accuracy(predicted, truth), [200 / 3, 50.0, 100.0])
    result = transcript_scores(predicted, truth)
    assert result["edit_distance"] == pytest.approx((0 + 1 + 1) / 3)
    assert result["edit"] == pytest.approx((100 + 50 + 0) / 3)
    assert result["exact"] == pytest.approx(100 / 3)
    assert result["position_accuracy"] == pytest.approx([200 / 3, 50.0, 100.0])
