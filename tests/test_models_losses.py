"""Cross-entropy (label statistics: tests/test_label_stats.py)."""

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
