"""Choosing the target size from the fingerprint, so that resizing the whole image keeps the
smallest structure the plans train.

The autoencoder codes 8 x 8 pixels as one latent pixel. An object under 16 pixels across at the
target size (two latent pixels) is carried by one or two latent values: its shape, and often the
object itself, is lost on the way through the latent space and back (an optic cup in a 2000 px
fundus photograph is 6-17 px across at 128 px). The rule, per trained class (a label, or a
region, whose objects are at least as large as its largest label's): take the median over the
training cases of the bounding box of the class's largest piece as fractions of the image's sides
(the fingerprint's ``object_fraction_hw_median``), scale it to a candidate size and keep its
shorter side. The plans take the preset's size if the smallest class keeps ``MIN_OBJECT_PIXELS``
there, else the first of its doublings that does, up to ``MAX_SIDE_FACTOR`` times the preset's
side (four times the pixels: about three to four times the time per training step). Where even
that is not enough, the plans take the largest size and say that the structure stays small.
``--target-size`` overrides the rule, and existing plans keep their size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leafnet.preprocessing.label_scheme import LabelScheme

MIN_OBJECT_PIXELS = 16
MAX_SIDE_FACTOR = 2


@dataclass(frozen=True)
class SizeDecision:
    """The chosen target size and why, as planning prints and records it."""

    target_size: tuple[int, int]
    preset_size: tuple[int, int]
    smallest_class: str | None
    extent_at_preset: float | None
    extent_at_target: float | None

    @property
    def enlarged(self) -> bool:
        return self.target_size != self.preset_size

    @property
    def sufficient(self) -> bool:
        return self.extent_at_target is None or self.extent_at_target >= MIN_OBJECT_PIXELS

    def explanation(self) -> str:
        """One sentence: the rule's numbers and its outcome."""
        if self.smallest_class is None:
            return (f"target size {_size(self.target_size)}: the preset's (no object sizes in "
                    "the fingerprint)")
        found = (f"the smallest trained class, {self.smallest_class}, is "
                 f"{self.extent_at_preset:.1f} px across at the preset's "
                 f"{_size(self.preset_size)}")
        if not self.enlarged:
            return (f"target size {_size(self.target_size)}, the preset's: {found} (at least "
                    f"{MIN_OBJECT_PIXELS} px needed)")
        if self.sufficient:
            return (f"target size {_size(self.target_size)} instead of the preset's: {found}, "
                    f"under the {MIN_OBJECT_PIXELS} px (two latent pixels) that keep its shape; "
                    f"at {_size(self.target_size)} it is {self.extent_at_target:.1f} px. A "
                    "training step costs about 3-4x more per doubling of the side; "
                    "--target-size H W overrides this")
        return (f"target size {_size(self.target_size)}, the largest this rule takes "
                f"({MAX_SIDE_FACTOR}x the preset's side): {found} and still "
                f"{self.extent_at_target:.1f} px at {_size(self.target_size)}, under the "
                f"{MIN_OBJECT_PIXELS} px that keep its shape; expect it to be segmented poorly. "
                "A larger --target-size H W, or images cropped around the structure, keep more "
                "of it")

    def to_json(self) -> dict[str, Any]:
        return {"rule": f"smallest trained class >= {MIN_OBJECT_PIXELS} px across at the "
                        f"target size, doubling the preset's side at most "
                        f"{MAX_SIDE_FACTOR // 2} time(s)",
                "preset_size": list(self.preset_size), "chosen": list(self.target_size),
                "smallest_class": self.smallest_class,
                "extent_at_preset_px": self.extent_at_preset,
                "extent_at_target_px": self.extent_at_target,
                "decision": self.explanation()}


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def class_fractions(fingerprint: dict[str, Any], scheme: LabelScheme) -> dict[str, list[float]]:
    """Each trained class's median object size as fractions (height, width) of the image: a
    region's is that of its largest label."""
    by_value = {entry["value"]: entry.get("object_fraction_hw_median")
                for entry in fingerprint.get("labels", {}).values()}
    fractions = {}
    for item in scheme.classes:
        known = [by_value[value] for value in item.values if by_value.get(value)]
        if known:
            fractions[item.name] = [max(f[0] for f in known), max(f[1] for f in known)]
    return fractions


def extent(fraction: list[float], size: tuple[int, int]) -> float:
    """The shorter side, in pixels at ``size``, of an object of ``fraction`` of the image."""
    return min(fraction[0] * size[0], fraction[1] * size[1])


def candidate_sizes(preset_size: tuple[int, int]) -> list[tuple[int, int]]:
    """The preset's size and its doublings up to ``MAX_SIDE_FACTOR`` times its side."""
    sizes, factor = [], 1
    while factor <= MAX_SIDE_FACTOR:
        sizes.append((preset_size[0] * factor, preset_size[1] * factor))
        factor *= 2
    return sizes


def first_keeping(fraction: list[float], sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The first of ``sizes`` at which an object of ``fraction`` keeps ``MIN_OBJECT_PIXELS``;
    the last one when none does."""
    return next((size for size in sizes if extent(fraction, size) >= MIN_OBJECT_PIXELS),
                sizes[-1])


def choose_target_size(fingerprint: dict[str, Any], scheme: LabelScheme,
                       preset_size: tuple[int, int]) -> SizeDecision:
    """The smallest of the preset's size and its doublings (up to ``MAX_SIDE_FACTOR``) at which
    every trained class keeps ``MIN_OBJECT_PIXELS``; else the largest of them."""
    fractions = class_fractions(fingerprint, scheme)
    if not fractions:
        return SizeDecision(preset_size, preset_size, None, None, None)
    smallest = min(fractions, key=lambda name: extent(fractions[name], preset_size))
    fraction = fractions[smallest]
    chosen = first_keeping(fraction, candidate_sizes(preset_size))
    return SizeDecision(chosen, preset_size, smallest, round(extent(fraction, preset_size), 1),
                        round(extent(fraction, chosen), 1))
