"""What one mask file holds, read once: its channels, value counts and where its in-between
values lie (on the edges between the two extremes, as anti-aliasing and JPEG ringing do, or off
them, as a region or a stray value does). mask_rule.py decides a dataset's rule from these facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from leafnet.errors import LeafnetError
from leafnet.imageio.endings import LOSSY_ENDINGS, file_ending
from leafnet.imageio.properties import ImageProperties
from leafnet.imageio.read_write import read_array
from leafnet.utilities.parallel import parallel_map

# JPEG masks: channels of a gray mask stored as RGB differ by compression noise only.
LOSSY_CHANNEL_TOLERANCE = 24
# A value counts as near the lowest or highest when it lies within this share of the range.
NEAR_EXTREME_BAND = 1 / 8
# Anti-aliased or compressed edges: a value between the extremes lies within this many pixels
# of both a low and a high pixel (resampling filters ring up to 3 pixels out; JPEG's ringing
# spreads over its 8-pixel blocks).
EDGE_RADIUS = 3
LOSSY_EDGE_RADIUS = 8


@dataclass(frozen=True)
class ChannelFacts:
    """What the channels of a mask file say beyond the channel read: whether its colour
    channels differ, and whether its object is drawn only in alpha (colour channels one value,
    alpha not)."""

    colours: bool = False
    alpha_only: bool = False


@dataclass(frozen=True)
class MaskFacts:
    """What one mask file holds: its mode, channels and value counts (of the channel read)."""

    path: Path
    mode: str | None
    channels: int
    colours: bool
    values: dict[int, int]
    alpha_only: bool = False
    middle: int = 0
    middle_off_edges: int = 0
    stray: int = 0

    @property
    def lossy(self) -> bool:
        return file_ending(self.path) in LOSSY_ENDINGS


def _colour_channels(array: np.ndarray, lossy: bool) -> bool:
    """Whether the colour channels of ``array`` differ (beyond JPEG noise for lossy files)."""
    if array.shape[0] == 1:
        return False
    spread = np.abs(array.astype(np.int32) - array[:1].astype(np.int32)).max()
    return bool(spread > (LOSSY_CHANNEL_TOLERANCE if lossy else 0))


def read_mask_channel(path: Path,
                      channel: int | None) -> tuple[np.ndarray, ImageProperties, ChannelFacts]:
    """The mask's ``(H, W)`` values: the chosen ``channel``, else the first colour channel
    (alpha dropped). Also returns the file's properties and :class:`ChannelFacts`."""
    array, properties = read_array(path, palette_as_index=True)
    if channel is not None:
        if not 0 <= channel < array.shape[0]:
            raise LeafnetError(f"{path}: has {array.shape[0]} channel(s); --mask-channel "
                               f"{channel} does not exist")
        return array[channel], properties, ChannelFacts()
    colour = array[:-1] if properties.has_alpha else array
    alpha_only = bool(properties.has_alpha and colour.min() == colour.max()
                      and array[-1].min() != array[-1].max())
    return colour[0], properties, ChannelFacts(
        _colour_channels(colour, file_ending(path) in LOSSY_ENDINGS), alpha_only)


def mask_facts(path: Path, mask: np.ndarray, properties: ImageProperties,
               channels: ChannelFacts) -> MaskFacts:
    """The :class:`MaskFacts` of a mask read by :func:`read_mask_channel`."""
    if not np.issubdtype(mask.dtype, np.integer) and not np.array_equal(mask, np.round(mask)):
        fraction = float(mask[mask != np.round(mask)].flat[0])
        raise LeafnetError(
            f"{path}: mask values must be integers, found fractions (e.g. {fraction:g}), as in a "
            "soft or probability map. Binarise the masks at your cut-off and save them as 0/1 "
            "or 0/255, or scale them to integers (0..255) and give --threshold T")
    lossy = file_ending(path) in LOSSY_ENDINGS
    return MaskFacts(path, properties.mode, properties.channels, channels.colours,
                     value_counts(mask), channels.alpha_only,
                     *middle_pixels(mask, LOSSY_EDGE_RADIUS if lossy else EDGE_RADIUS, lossy))


def middle_pixels(mask: np.ndarray, radius: int, lossy: bool = False) -> tuple[int, int, int]:
    """Three counts of the pixels off the mask's two extreme values. How many lie between them
    (beyond an eighth of the range from either); how many of those are farther than ``radius``
    from a low or from a high pixel (anti-aliased and compressed edges have none, a region of a
    third value has its interior there), or, in a ``lossy`` file, inside a 3 x 3 block of
    in-between pixels (JPEG's edges are one or two pixels wide, while a rim of a third value a
    few pixels wide lies within the wide lossy ``radius`` of both extremes: measured, a 3 px
    rim of 128 keeps 15% of its pixels in such blocks at any quality, a 0/255 disc at quality
    50 none); and how many pixels of any value but the two extremes lie off the edges (a stray
    value, near an extreme or not)."""
    low, high = int(mask.min()), int(mask.max())
    band = (high - low) * NEAR_EXTREME_BAND
    lows, highs = mask <= low + band, mask >= high - band
    others = (mask != low) & (mask != high)
    if not others.any():
        return 0, 0, 0
    middle = ~(lows | highs)
    size = 2 * radius + 1
    off_edges = ~(ndimage.maximum_filter(lows, size) & ndimage.maximum_filter(highs, size))
    regional = middle & off_edges
    if lossy:
        regional |= ndimage.binary_erosion(middle, np.ones((3, 3), bool))
    return int(middle.sum()), int(regional.sum()), int((others & off_edges).sum())


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """How many pixels hold each value of ``mask`` (8-bit masks are counted with a histogram:
    no sort of every pixel, ten times faster on a megapixel mask)."""
    if mask.dtype in (np.uint8, np.bool_):
        counts = np.bincount(mask.ravel().view(np.uint8), minlength=2)
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(mask, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


class SurveyTask:
    """Picklable worker: one mask path -> its :class:`MaskFacts`."""

    def __init__(self, channel: int | None) -> None:
        self.channel = channel

    def __call__(self, path: Path) -> MaskFacts:
        return mask_facts(path, *read_mask_channel(path, self.channel))


def survey_masks(paths: Sequence[Path], channel: int | None, num_processes: int | None,
                 show_progress: bool) -> list[MaskFacts]:
    """Read every mask once (in parallel) and record its values."""
    return parallel_map(SurveyTask(channel), paths, num_processes, "reading masks",
                        show_progress)
