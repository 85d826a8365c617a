"""The region-of-interest crop of two-stage plans: nnU-Net's cascade idea in 2D.

The coarse stage sees the whole image at a low resolution and finds the structure; the crop
stage sees a square crop around it, resized to its own target size, so that a small structure
inside (an optic cup in a 2000 px fundus photograph) keeps enough pixels. Training crops come from the
reference label and prediction crops from the coarse stage's label, by the same two functions:
the region of interest is the bounding box of the largest 8-connected piece of the foreground
(every label together), and the crop is a square ``margin`` times its longer side around its
centre, moved inside the image where it fits and padded with zeros where the image is smaller.

Training crops are jittered (the plans' ``"training_jitter": true``, what planning writes):
each case's crop is scaled by a factor drawn from ``SCALE_JITTER`` and its centre moved by up to
``SHIFT_JITTER`` of the room the structure has in it, from a generator seeded by the case id (so
preprocessing is reproducible). Without it every training crop shows the structure at exactly
half the crop's side in its middle, and the crop stage learns that instead of the structure's
edges, and its masks follow the coarse stage's crop instead of the image (the fundus set in
docs/results.md).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ROI_MARGIN = 2.0
SCALE_JITTER = (0.75, 1.33)
SHIFT_JITTER = 0.8


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


def crop_box(roi: Box, image_hw: tuple[int, int], margin: float = ROI_MARGIN,
             shift: tuple[float, float] = (0.0, 0.0)) -> Box:
    """The square crop of side ``margin`` times the longer side of ``roi`` (at least 8 px, and
    at least that side) around its centre, its centre moved by ``shift`` (-1 to 1) times the room
    the region has along each axis, then moved inside the image where the image is large
    enough."""
    longer = max(roi.height, roi.width)
    side = max(8, longer, math.ceil(margin * longer))
    start = []
    for low, high, length, move in ((roi.top, roi.bottom, image_hw[0], shift[0]),
                                    (roi.left, roi.right, image_hw[1], shift[1])):
        room = (side - (high - low)) / 2
        first = int(round((low + high) / 2 + move * room - side / 2))
        if side <= length:
            first = min(max(first, 0), length - side)
        start.append(first)
    return Box(start[0], start[1], start[0] + side, start[1] + side)


def roi_crop_box(label: np.ndarray, margin: float = ROI_MARGIN,
                 jitter: np.random.Generator | None = None) -> Box:
    """The crop of a label image's foreground (the whole image when there is none); with a
    ``jitter`` generator, scaled and moved as training crops are."""
    found = largest_piece(label > 0)
    if found is None:
        return Box(0, 0, *label.shape)
    shift = (0.0, 0.0)
    if jitter is not None:
        margin *= float(jitter.uniform(*SCALE_JITTER))
        shift = tuple(float(v) for v in jitter.uniform(-SHIFT_JITTER, SHIFT_JITTER, 2))
    return crop_box(found[0], label.shape, margin, shift)


def case_generator(case_id: str) -> np.random.Generator:
    """The jitter generator of one case, seeded by its id."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8],
                                                "little"))


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
