"""Intensity normalisation to uint8 through the plans' per-channel windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize_to_uint8(image: np.ndarray, windows: Sequence[dict[str, float]]) -> np.ndarray:
    """Map each channel of a ``(C, H, W)`` image from ``[lower, upper]`` onto 0..255.

    An 8-bit image with the window [0, 255] comes back unchanged.
    """
    if image.dtype == np.uint8 and all(w["lower"] == 0 and w["upper"] == 255 for w in windows):
        return image
    output = np.empty(image.shape, dtype=np.uint8)
    for channel, window in enumerate(windows):
        lower, upper = float(window["lower"]), float(window["upper"])
        clipped = np.clip(image[channel].astype(np.float64), lower, upper)
        output[channel] = np.rint((clipped - lower) / (upper - lower) * 255)
    return output


def to_network_input(image: np.ndarray) -> np.ndarray:
    """A stored uint8 image (or batch) as the network sees it: float32 in [-1, 1]. The one place
    this mapping is written; training data loading and prediction both use it."""
    return np.asarray(image, dtype=np.float32) / 127.5 - 1
