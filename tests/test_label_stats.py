"""Label statistics: the one class-weight definition, its files, reading and the fallback."""

import json

import numpy as np
import pytest

from vidpipe import label_stats


def _write_stats(root, rows, stats, header="label,count,weight"):
    stats_dir = root / "label_stats"
    stats_dir.mkdir(parents=True)
    (stats_dir / "label_counts.csv").write_text(header + "\n" + "".join(f"{row}\n" for row in rows))
    (stats_dir / "label_stats.json").write_text(json.dumps(stats))


def test_class_weight_is_occurrences_over_classes_times_count():
    # n = {3: 1, 5: 3, 7: 4}: N = 8 label occurrences, C = 3 classes -> w_i = 8 / (3 * n_i)
    assert label_stats.class_weight_rows({7: 4, 3: 1, 5: 3}) == [(3, 1, 8 / 3), (5, 3, 8 / 9), (7, 4, 8 / 12)]
    assert label_stats.class_weight_rows({4: 2, 9: 6}) == [(4, 2, 2.0), (9, 6, 8 / 12)]
    assert label_stats.class_weight(count=4, total=8, num_classes=3) == pytest.approx(2 / 3)
    weights = [weight for _, _, weight in label_stats.class_weight_rows({0: 10, 1: 5, 2: 1, 3: 4})]
    assert np.mean(np.array(weights) * np.array([10, 5, 1, 4])) == pytest.approx(20 / 4)
    assert label_stats.class_weight_rows({1: 2, 2: 0}) == [(1, 2, 1.0)]
    assert label_stats.class_weight_rows({}) == []


def test_written_stats_round_trip(tmp_path):
    rows = label_stats.class_weight_rows({0: 8, 1: 2})
    stats = label_stats.write_label_stats(rows, 9, str(tmp_path / "label_stats"))
    assert stats == {"num_videos": 9, "num_classes": 2, "max_label": 1, "num_label_occurrences": 10}
    assert (tmp_path / "label_stats" / "label_counts.csv").read_text() == "label,count,weight\n0,8,0.625\n1,2,2.5\n"
    assert label_stats.load_label_stats(str(tmp_path)) == stats
    assert label_stats.load_label_counts(str(tmp_path)) == [(0, 8, 0.625), (1, 2, 2.5)]
    assert label_stats.load_num_classes(str(tmp_path)) == 2
    np.testing.assert_allclose(label_stats.load_class_weights(str(tmp_path), 3), [0.625, 2.5, 1.0])
    assert sorted(p.name for p in (tmp_path / "label_stats").iterdir()) == ["label_counts.csv", "label_stats.json"]


def test_fallback_without_a_weight_column_agrees_with_the_written_weights(tmp_path):
    """A video carries several labels, so num_videos (6) != label occurrences (10): the fallback uses the latter."""
    counts = {0: 8, 1: 2}
    label_stats.write_label_stats(label_stats.class_weight_rows(counts), 6, str(tmp_path / "written" / "label_stats"))
    _write_stats(tmp_path / "bare", ["0,8", "1,2"], {"num_videos": 6, "num_classes": 2, "max_label": 1}, "label,count")
    written = label_stats.load_class_weights(str(tmp_path / "written"), 2)
    fallback = label_stats.load_class_weights(str(tmp_path / "bare"), 2)
    np.testing.assert_allclose(fallback, written, rtol=1e-7)
    np.testing.assert_allclose(fallback, [10 / 16, 10 / 4])


def test_class_weights_from_label_counts(tmp_path):
    _write_stats(tmp_path, ["0,10,0.5", "2,5,1.0", "3,1,5.0"], {"num_videos": 15, "num_classes": 3, "max_label": 3})
    assert label_stats.load_num_classes(str(tmp_path)) == 4
    weights = label_stats.load_class_weights(str(tmp_path), 6)
    np.testing.assert_allclose(weights, [0.5, 1.0, 1.0, 5.0, 1.0, 1.0])
    np.testing.assert_allclose(label_stats.load_class_weights(str(tmp_path), 6, power=0.5),
                               np.sqrt([0.5, 1.0, 1.0, 5.0, 1.0, 1.0]), rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        label_stats.load_class_weights(str(tmp_path), 3)


def test_class_weights_computed_when_the_weight_column_is_missing(tmp_path):
    _write_stats(tmp_path, ["0,8", "1,2", "4,0"], {"num_videos": 10, "num_classes": 2, "max_label": 1}, "label,count")
    np.testing.assert_allclose(label_stats.load_class_weights(str(tmp_path), 5), [10 / 16, 10 / 4, 1, 1, 1])


def test_missing_label_stats_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="label_stats"):
        label_stats.load_num_classes(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="label_counts.csv"):
        label_stats.load_class_weights(str(tmp_path), 3)


@pytest.mark.parametrize("rows, stats, header, message", [
    (["0,x,1"], {"max_label": 0}, "label,count,weight", r"label_counts.csv: a row is not label,count\[,weight\]"),
    (["0,1"], {"max_label": 0}, "id,n", r"label_counts.csv: expected columns label,count\[,weight\]"),
    (["0,1,0"], {"max_label": 0}, "label,count,weight", "label_counts.csv: class weights must be finite and positive"),
])
def test_bad_label_counts_are_one_line_errors(tmp_path, rows, stats, header, message):
    _write_stats(tmp_path, rows, stats, header)
    with pytest.raises(ValueError, match=message):
        label_stats.load_class_weights(str(tmp_path), 2)


def test_bad_label_stats_json_is_a_one_line_error(tmp_path):
    _write_stats(tmp_path, [], {"num_videos": 0}, "label,count")
    with pytest.raises(ValueError, match="label_stats.json has no 'max_label'"):
        label_stats.load_num_classes(str(tmp_path))
    (tmp_path / "label_stats" / "label_stats.json").write_text("[1]")
    with pytest.raises(ValueError, match="label_stats.json: expected a JSON object"):
        label_stats.load_label_stats(str(tmp_path))
    (tmp_path / "label_stats" / "label_stats.json").write_text("{")
    with pytest.raises(ValueError, match="label_stats.json: not valid JSON"):
        label_stats.load_label_stats(str(tmp_path))


def test_label_stats_module_needs_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, vidpipe.label_stats; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False"
