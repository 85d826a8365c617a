"""Dice and IoU of binary masks.

Convention for empty masks: when both reference and prediction are empty the case scores 1
(nothing to find, nothing found); an empty reference with a non-empty prediction scores 0.
"""

from __future__ import annotations

import numpy as np


def dice_and_iou(prediction: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks of the same shape."""
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    intersection = np.logical_and(prediction, reference).sum()
    total = prediction.sum() + reference.sum()
    if total == 0:
        return 1.0, 1.0
    union = total - intersection
    return float(2 * intersection / total), float(intersection / union)
