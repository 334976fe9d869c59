"""Cross-entropy and label statistics."""

import json

import numpy as np
import pytest

from models import losses


def _reference(labels, probs, weights=None):
    eps = 1e-5
    weights = np.ones(labels.shape[1]) if weights is None else weights
    per_class = -(weights * labels * np.log(probs + eps) + (1 - labels) * np.log(1 - probs + eps))
    return per_class.sum(axis=1).mean()


def test_cross_entropy_sums_classes_and_averages_batch():
    rng = np.random.default_rng(0)
    labels = (rng.random((5, 7)) < 0.3).astype(np.float32)
    probs = rng.random((5, 7)).astype(np.float32)
    assert float(losses.cross_entropy(labels, probs)) == pytest.approx(_reference(labels, probs), rel=1e-5)
    weights = rng.random(7).astype(np.float32) * 3
    assert float(losses.CrossEntropyLoss(weights)(labels, probs)) == pytest.approx(
        _reference(labels, probs, weights), rel=1e-5)
    assert float(losses.cross_entropy(labels, labels)) < 1e-3 * labels.size


def _write_stats(root, rows, stats, header="label,count,weight"):
    stats_dir = root / "label_stats"
    stats_dir.mkdir(parents=True)
    (stats_dir / "label_counts.csv").write_text(header + "\n" + "".join(f"{row}\n" for row in rows))
    (stats_dir / "label_stats.json").write_text(json.dumps(stats))


def test_class_weights_from_label_counts(tmp_path):
    _write_stats(tmp_path, ["0,10,0.5", "2,5,1.0", "3,1,5.0"], {"num_videos": 15, "num_classes": 3, "max_label": 3})
    assert losses.load_num_classes(str(tmp_path)) == 4
    weights = losses.load_class_weights(str(tmp_path), 6)
    np.testing.assert_allclose(weights, [0.5, 1.0, 1.0, 5.0, 1.0, 1.0])
    np.testing.assert_allclose(losses.load_class_weights(str(tmp_path), 6, power=0.5),
                               np.sqrt([0.5, 1.0, 1.0, 5.0, 1.0, 1.0]), rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        losses.load_class_weights(str(tmp_path), 3)


def test_class_weights_computed_when_the_weight_column_is_missing(tmp_path):
    _write_stats(tmp_path, ["0,8", "1,2", "4,0"], {"num_videos": 10, "num_classes": 2, "max_label": 1}, "label,count")
    np.testing.assert_allclose(losses.load_class_weights(str(tmp_path), 5), [10 / 16, 10 / 4, 1, 1, 1])


def test_missing_label_stats_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="label_stats"):
        losses.load_num_classes(str(tmp_path))
