"""Random mask shapes for the shipped mask autoencoder: what segmentation masks look like in
general, not in one dataset.

A draw is a coded target mask ``(C, H, W)`` in {0, 1} with one to three channels, as the label
schemes code them (``LabelScheme.encode``): one structure; mutually exclusive labels (disjoint
channels); nested regions (each channel inside the one before, like the optic disc and cup);
or independent channels (the bit code of up to seven labels). Each channel is made of the
shapes below, at sizes from a few pixels to most of the image, touching the border or not:

- blobs: discs whose radius wobbles with a few random harmonics, stretched and turned;
- rings and blobs with holes;
- polygons (sharp corners) and rectangles;
- thin structures: branching curves 1 to 6 px wide (vessels, ducts, catheters);
- large fields: two lobes side by side (lungs), or the whole image less a hole;
- nothing (an empty mask).

Every draw is a function of its generator, so a training step's masks are a function of
(seed, step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as polygon_pixels

Shape = Callable[[np.random.Generator, int], np.ndarray]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _radius(rng: np.random.Generator, size: int, small: float = 0.015,
            large: float = 0.45) -> float:
    """A radius log-uniform between ``small`` and ``large`` of the side: small objects are
    as common as large ones."""
    return float(np.exp(rng.uniform(np.log(small), np.log(large))) * size)


def blob(rng: np.random.Generator, size: int, radius: float | None = None,
         centre: np.ndarray | None = None) -> np.ndarray:
    """A wobbly, stretched and turned disc."""
    radius = _radius(rng, size) if radius is None else radius
    if centre is None:
        centre = rng.uniform(0.02 * size, 0.98 * size, 2)
    yy, xx = _grid(size)
    angle = rng.uniform(0, np.pi)
    stretch = np.exp(rng.uniform(0, np.log(3.5)))
    dy, dx = yy - centre[0], xx - centre[1]
    u = (dy * np.cos(angle) + dx * np.sin(angle)) / np.sqrt(stretch)
    v = (-dy * np.sin(angle) + dx * np.cos(angle)) * np.sqrt(stretch)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for harmonic in range(2, 6):
        boundary += rng.uniform(0, 0.25 / harmonic * 2) * np.cos(
            harmonic * theta + rng.uniform(0, 2 * np.pi))
    return np.hypot(u, v) <= radius * boundary


def ring(rng: np.random.Generator, size: int) -> np.ndarray:
    """A blob less a smaller blob inside it (a ring, or a blob with a hole)."""
    radius = _radius(rng, size, 0.05, 0.45)
    centre = rng.uniform(0.1 * size, 0.9 * size, 2)
    outer = blob(rng, size, radius, centre)
    inner = blob(rng, size, radius * rng.uniform(0.3, 0.8),
                 centre + rng.uniform(-0.15, 0.15, 2) * radius)
    return outer & ~inner


def polygon(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random polygon of 3 to 8 corners (or a rectangle), with sharp corners."""
    radius = _radius(rng, size, 0.03, 0.45)
    centre = rng.uniform(0, size, 2)
    corners = int(rng.integers(3, 9))
    if rng.random() < 0.3:
        corners, angles = 4, np.array([0.25, 0.75, 1.25, 1.75]) * np.pi + rng.uniform(0, np.pi)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    lengths = radius * rng.uniform(0.5, 1.0, corners)
    rows = centre[0] + lengths * np.sin(angles)
    cols = centre[1] + lengths * np.cos(angles)
    mask = np.zeros((size, size), bool)
    mask[polygon_pixels(rows, cols, (size, size))] = True
    return mask


def thin_structure(rng: np.random.Generator, size: int) -> np.ndarray:
    """Branching curves 1 to 6 px wide: a random walk with smoothly turning direction that
    sprouts branches."""
    mask = np.zeros((size, size), bool)
    starts = [(rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi))]
    length = int(rng.uniform(0.4, 2.0) * size)
    for _ in range(int(rng.integers(1, 6))):
        if not starts:
            break
        point, heading = starts.pop()
        turn = rng.uniform(0.02, 0.25)
        for _ in range(length):
            heading += rng.normal(0, turn)
            point = point + np.array([np.sin(heading), np.cos(heading)])
            row, col = int(round(point[0])), int(round(point[1]))
            if not (0 <= row < size and 0 <= col < size):
                break
            mask[row, col] = True
            if rng.random() < 0.01:
                starts.append((point.copy(), heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)))
        length = int(length * rng.uniform(0.3, 0.8))
    width = int(rng.integers(1, 7))
    if width > 1:
        mask = ndimage.binary_dilation(mask, np.ones((width, width), bool))
    return mask


def large_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two large lobes side by side (lung fields), or the whole image less a blob."""
    if rng.random() < 0.5:
        return ~blob(rng, size, _radius(rng, size, 0.1, 0.45), rng.uniform(0.2, 0.8, 2) * size)
    radius = size * rng.uniform(0.2, 0.32)
    gap = size * rng.uniform(0.22, 0.3)
    middle = size * rng.uniform(0.4, 0.6)
    left = blob(rng, size, radius, np.array([middle, size / 2 - gap]))
    right = blob(rng, size, radius, np.array([middle, size / 2 + gap]))
    return left | right


SHAPES: dict[str, tuple[Shape, float]] = {
    "blob": (blob, 0.4),
    "ring": (ring, 0.1),
    "polygon": (polygon, 0.15),
    "thin": (thin_structure, 0.2),
    "large": (large_field, 0.15),
}


def one_channel(rng: np.random.Generator, size: int) -> np.ndarray:
    """One channel: one to four shapes of the kinds above, or (3%) nothing."""
    mask = np.zeros((size, size), bool)
    if rng.random() < 0.03:
        return mask
    names = list(SHAPES)
    weights = np.array([SHAPES[name][1] for name in names])
    for _ in range(int(rng.choice([1, 1, 1, 2, 3, 4]))):
        mask |= SHAPES[names[rng.choice(len(names), p=weights / weights.sum())]][0](rng, size)
    return mask


def nested(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """Nested regions: each channel a blob inside the one before (the region coding)."""
    radius = _radius(rng, size, 0.04, 0.45)
    centre = rng.uniform(0.15 * size, 0.85 * size, 2)
    masks = [blob(rng, size, radius, centre)]
    for _ in range(channels - 1):
        radius *= rng.uniform(0.3, 0.8)
        centre = centre + rng.uniform(-0.2, 0.2, 2) * radius
        masks.append(blob(rng, size, radius, centre) & masks[-1])
    return np.stack(masks)


def exclusive(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """Mutually exclusive labels: one channel each, a later label painted over earlier ones."""
    painted = np.zeros((size, size), np.int64)
    for label in range(1, channels + 1):
        painted[one_channel(rng, size)] = label
    return np.stack([painted == label for label in range(1, channels + 1)])


def random_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One coded mask ``(C, size, size)`` float32 in {0, 1}: one channel (45%), two (35%) or
    three (20%), laid out as nested regions (40%), exclusive labels (40%) or independent
    channels (20%)."""
    channels = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    if channels == 1:
        mask = one_channel(rng, size)[None]
    else:
        layout = rng.choice(["nested", "exclusive", "independent"], p=[0.4, 0.4, 0.2])
        if layout == "nested":
            mask = nested(rng, size, channels)
        elif layout == "exclusive":
            mask = exclusive(rng, size, channels)
        else:
            mask = np.stack([one_channel(rng, size) for _ in range(channels)])
    return mask.astype(np.float32)
