"""Cases converted from source files: how images are normalised and masks turned into labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from leafnet.atomic import copy_file
from leafnet.dataset_conversion.source_layout import case_id, pair_by_stem
from leafnet.errors import LeafnetError
from leafnet.imageio import (
    SITK_ENDINGS,
    canonical_ending,
    read_array,
    write_image,
    write_label,
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

    A source file that already has the right mode and ending is copied byte for byte (no
    re-encoding of JPEGs); anything else is decoded, converted and written anew.
    """

    channels: int = 3

    def _can_copy(self, source: Path, destination: Path) -> bool:
        if canonical_ending(source) != canonical_ending(destination):
            return False
        if canonical_ending(source) in SITK_ENDINGS:
            return True
        try:
            with Image.open(source) as image:
                return image.mode == _MODE_FOR_CHANNELS.get(self.channels)
        except OSError:
            return False

    def write(self, source: Path, destination: Path) -> None:
        if self._can_copy(source, destination):
            copy_file(source, destination)
            return
        array, properties = read_array(source)
        write_image(destination, _to_channels(array, self.channels, properties.has_alpha, source),
                    properties)


@dataclass(frozen=True)
class MaskRule:
    """How a source mask becomes a label (read from its first channel).

    - ``label_map`` maps each source value to a label; a value it does not name is an error.
    - ``threshold``: foreground (1) where the value is ``>= threshold`` (``< threshold`` when
      ``foreground_below``); what binary masks saved as 0/255 or as JPEG need.
    - neither: values are kept, except that a binary dataset's mask whose values exceed 1 is
      thresholded at 128 (so 0/1 and 0/255 masks both work).
    """

    threshold: float | None = None
    foreground_below: bool = False
    label_map: tuple[tuple[int, int], ...] | None = None
    num_labels: int = 2

    def to_label(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if self.label_map is not None:
            label = np.zeros(mask.shape, dtype=np.uint8)
            known = np.zeros(mask.shape, dtype=bool)
            for source, target in self.label_map:
                hit = mask == source
                label[hit] = target
                known |= hit
            if not known.all():
                unknown = np.unique(mask[~known])[:8].tolist()
                raise LeafnetError(
                    f"{path}: values {unknown} are not in the label map; add them "
                    "(--label-map 'SRC:DST,...') or use --threshold"
                )
            return label
        threshold = self.threshold
        if threshold is None and self.num_labels == 2 and mask.max(initial=0) > 1:
            threshold = 128
        if threshold is None:
            return mask
        foreground = mask < threshold if self.foreground_below else mask >= threshold
        return foreground.astype(np.uint8)

    def write(self, source: Path, destination: Path) -> None:
        array, properties = read_array(source, palette_as_index=True)
        write_label(destination, self.to_label(array[0], source), properties)


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
