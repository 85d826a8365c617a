"""The region-of-interest crop of two-stage (cascade) plans: nnU-Net's cascade idea in 2D.

A coarse model sees the whole image at a low resolution and finds the structure; a second model
sees a square crop around it, resized to its own target size, so that a small structure inside
(an optic cup in a 2000 px fundus photograph) keeps enough pixels. Training crops come from the
reference label and prediction crops from the coarse model's label, by the same two functions:
the region of interest is the bounding box of the largest 8-connected piece of the foreground
(every label together), and the crop is a square ``margin`` times its longer side around its
centre, moved inside the image where it fits and padded with zeros where the image is smaller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ROI_MARGIN = 2.0


@dataclass(frozen=True)
class Box:
    """A half-open pixel box ``[top, bottom) x [left, right)``; it may reach outside the image
    (the outside is padding)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def to_json(self) -> list[int]:
        return [self.top, self.left, self.bottom, self.right]


def largest_piece(mask: np.ndarray) -> tuple[Box, float] | None:
    """The bounding box of the largest 8-connected piece of ``mask`` and the share of the
    mask's pixels in that piece; None for an empty mask."""
    pieces, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if not count:
        return None
    sizes = np.bincount(pieces.ravel())[1:]
    largest = int(np.argmax(sizes))
    rows, columns = ndimage.find_objects(pieces)[largest]
    box = Box(rows.start, columns.start, rows.stop, columns.stop)
    return box, float(sizes[largest] / sizes.sum())


def crop_box(roi: Box, image_hw: tuple[int, int], margin: float = ROI_MARGIN) -> Box:
    """The square crop of side ``margin`` times the longer side of ``roi`` (at least 8 px)
    around its centre, moved inside the image along each axis where the image is large enough."""
    side = max(8, math.ceil(margin * max(roi.height, roi.width)))
    start = []
    for low, high, length in ((roi.top, roi.bottom, image_hw[0]),
                              (roi.left, roi.right, image_hw[1])):
        first = int(round((low + high) / 2 - side / 2))
        if side <= length:
            first = min(max(first, 0), length - side)
        start.append(first)
    return Box(start[0], start[1], start[0] + side, start[1] + side)


def roi_crop_box(label: np.ndarray | None, margin: float = ROI_MARGIN) -> Box:
    """The crop of a label image's foreground; the whole image when there is none."""
    height, width = label.shape if label is not None else (0, 0)
    found = largest_piece(label > 0) if label is not None else None
    if found is None:
        return Box(0, 0, height, width)
    return crop_box(found[0], (height, width), margin)


def _overlap(box: Box, height: int, width: int) -> tuple[slice, slice, slice, slice]:
    """Where ``box`` and the image overlap: the image's slices and the box's."""
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.bottom, height), min(box.right, width)
    return (slice(top, bottom), slice(left, right),
            slice(top - box.top, bottom - box.top), slice(left - box.left, right - box.left))


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """The ``box`` of the last two axes of ``array``, zero outside the image."""
    height, width = array.shape[-2:]
    out = np.zeros((*array.shape[:-2], box.height, box.width), dtype=array.dtype)
    rows, columns, box_rows, box_columns = _overlap(box, height, width)
    out[..., box_rows, box_columns] = array[..., rows, columns]
    return out


def paste(target: np.ndarray, part: np.ndarray, box: Box) -> None:
    """Write ``part`` (the size of ``box``) into the last two axes of ``target`` where the box
    lies inside it."""
    height, width = target.shape[-2:]
    rows, columns, box_rows, box_columns = _overlap(box, height, width)
    target[..., rows, columns] = part[..., box_rows, box_columns]
