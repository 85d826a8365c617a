"""Cases converted from source files: how images are normalised (masks: imageio/mask_rule.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leafnet.atomic import copy_file
from leafnet.imageio.mask_rule import MaskRule
from leafnet.imageio.read_write import image_header
from leafnet.dataset_conversion.source_layout import case_id, pair_by_stem
from leafnet.errors import LeafnetError
from leafnet.imageio import (
    SITK_ENDINGS,
    canonical_ending,
    read_array,
    write_image,
)

_MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def _to_channels(array: np.ndarray, channels: int, has_alpha: bool, path: Path) -> np.ndarray:
    """Drop alpha, and turn grayscale into RGB or RGB into grayscale, as the dataset needs."""
    if has_alpha:
        array = array[:-1]
    if array.shape[0] == channels:
        return array
    if channels == 3 and array.shape[0] == 1:
        return np.repeat(array, 3, axis=0)
    if channels == 1 and array.shape[0] == 3:
        if np.array_equal(array[0], array[1]) and np.array_equal(array[0], array[2]):
            return array[:1]
        weights = np.array([0.299, 0.587, 0.114])[:, None, None]
        gray = np.rint((array.astype(np.float64) * weights).sum(axis=0))
        return gray.astype(array.dtype)[None]
    raise LeafnetError(f"{path}: has {array.shape[0]} channels; expected {channels}")


@dataclass(frozen=True)
class ImageRule:
    """How a source image becomes a raw image: the channel count the dataset declares.

    A source file that already has the right mode and ending and no EXIF orientation tag is
    copied byte for byte (no re-encoding of JPEGs); anything else is decoded (as displayed, the
    orientation applied), converted and written anew, so that no reader can see it rotated.
    """

    channels: int = 3

    def _can_copy(self, source: Path, destination: Path) -> bool:
        if canonical_ending(source) != canonical_ending(destination):
            return False
        if canonical_ending(source) in SITK_ENDINGS:
            return True
        mode, orientation = image_header(source)
        return mode == _MODE_FOR_CHANNELS.get(self.channels) and orientation == 1

    def write(self, source: Path, destination: Path) -> None:
        if self._can_copy(source, destination):
            copy_file(source, destination)
            return
        array, properties = read_array(source)
        write_image(destination, _to_channels(array, self.channels, properties.has_alpha, source),
                    properties)


@dataclass(frozen=True)
class FileCase:
    """A case read from a source image file and (unless it is unlabelled) a mask file."""

    case_id: str
    subset: str
    image: Path
    mask: Path | None
    image_rule: ImageRule
    mask_rule: MaskRule

    @property
    def has_label(self) -> bool:
        return self.mask is not None

    def write(self, image_path: Path, label_path: Path | None) -> None:
        self.image_rule.write(self.image, image_path)
        if self.mask is not None and label_path is not None:
            self.mask_rule.write(self.mask, label_path)


def paired_cases(
    images_dir: Path,
    masks_dir: Path,
    subset: str,
    image_rule: ImageRule,
    mask_rule: MaskRule,
    affixes: Sequence[tuple[str, str]] = (("", ""),),
    id_prefix: str = "",
) -> list[FileCase]:
    """One :class:`FileCase` per image in ``images_dir`` with its mask from ``masks_dir``."""
    return [
        FileCase(case_id(stem, id_prefix), subset, image, mask, image_rule, mask_rule)
        for stem, image, mask in pair_by_stem(images_dir, masks_dir, affixes)
    ]


def output_image_ending(cases: Sequence[FileCase]) -> str:
    """The sources' own ending when they all share one (so they can be copied), else PNG."""
    endings = {canonical_ending(case.image) for case in cases}
    if len(endings) == 1:
        return endings.pop()
    return ".nii.gz" if endings <= set(SITK_ENDINGS) else ".png"
