"""Resampling images, labels and probability maps between raw and planned sizes (Pillow).

Pillow's bilinear filter widens its support when shrinking, so downsampling is antialiased;
nearest neighbour for labels never creates a value that was not there.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a ``(C, H, W)`` uint8 image to ``size = (height, width)``, antialiased."""
    height, width = size
    if image.shape[0] == 3:
        rgb = Image.fromarray(np.ascontiguousarray(np.moveaxis(image, 0, -1)), mode="RGB")
        return np.moveaxis(np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR)),
                           -1, 0).copy()
    channels = [
        np.asarray(Image.fromarray(channel).resize((width, height), Image.Resampling.BILINEAR))
        for channel in image
    ]
    return np.stack(channels)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W)`` integer label by nearest neighbour, keeping its dtype."""
    height, width = size
    resized = Image.fromarray(label.astype(np.int32)).resize((width, height),
                                                             Image.Resampling.NEAREST)
    return np.asarray(resized).astype(label.dtype)


def resize_probabilities(probabilities: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W)`` float map bilinearly (for probabilities mapped back to raw size)."""
    height, width = size
    resized = Image.fromarray(probabilities.astype(np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)
