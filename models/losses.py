"""Sigmoid cross-entropy on probabilities, optionally class weighted.

The class weights and the output size come from the label statistics (vidpipe.label_stats owns them).
"""

from __future__ import annotations

import numpy as np
from keras import ops

EPSILON = 1e-5


def cross_entropy(labels, probabilities, class_weights=None):
    """labels, probabilities [B, C] -> scalar: per-class binary cross-entropy summed over classes,
    averaged over the batch (the starter's CrossEntropyLoss, with its epsilon 1e-5).

    class_weights [C], when given, scales the positive term of each class:
    ``-(w_c * y log(p + eps) + (1 - y) log(1 - p + eps))``, so rare classes get as much push
    towards recall as frequent ones without also being pushed harder towards 0.
    """
    probabilities = ops.cast(probabilities, "float32")
    labels = ops.cast(labels, "float32")
    positive = labels * ops.log(probabilities + EPSILON)
    if class_weights is not None:
        positive = positive * ops.cast(class_weights, "float32")[None, :]
    negative = (1.0 - labels) * ops.log(1.0 - probabilities + EPSILON)
    return ops.mean(ops.sum(-(positive + negative), axis=1))


class CrossEntropyLoss:
    """Callable ``(labels [B, C], probabilities [B, C]) -> scalar`` with fixed class weights (or none)."""

    def __init__(self, class_weights: np.ndarray | None = None):
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)

    def __call__(self, labels, probabilities):
        return cross_entropy(labels, probabilities, self.class_weights)
