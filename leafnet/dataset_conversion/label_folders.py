"""Several mask folders, one per label (``--masks disc=DIR --masks cup=DIR``), as one label image.

Each folder is binarised by its own rule (decided from its masks and printed, or given with
``--threshold NAME=T``); label ``i`` (1-based, in the order given) is painted where mask ``i`` is
set, later labels over earlier ones. Mutually exclusive labels may not overlap: an overlap is
an error naming the case. ``nested`` declares that each mask contains the next ones (the optic
disc contains the cup): the labels become nnU-Net regions, label ``i``'s region being the values
``i..N``, so region ``i`` is exactly the union of masks ``i..N``. Before anything is written,
:func:`check_nesting` makes sure each mask does contain the next (up to ``NEST_TOLERANCE`` of
the inner mask or ``NEST_TOLERANCE_PIXELS``, for hand-drawn outlines), else painting the inner
label over the outer one would erase the outer structure: masks given in the wrong order are
refused, naming the cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leafnet.dataset_conversion.file_cases import ImageRule
from leafnet.dataset_conversion.source_layout import case_id, pair_by_stem
from leafnet.errors import LeafnetError
from leafnet.imageio import write_label
from leafnet.imageio.mask_facts import read_mask_channel, survey_masks
from leafnet.imageio.mask_rule import MaskRule, decide_mask_rule
from leafnet.utilities.parallel import parallel_map

# Share of an inner mask that may lie outside the mask it is nested in (outlines drawn by hand).
NEST_TOLERANCE = 0.02
NEST_TOLERANCE_PIXELS = 4
MAX_LISTED = 5


@dataclass(frozen=True)
class LabelFolderCase:
    """A case whose label is painted from one binary mask file per label."""

    case_id: str
    subset: str
    image: Path
    masks: tuple[Path, ...]
    image_rule: ImageRule
    mask_rules: tuple[MaskRule, ...]
    names: tuple[str, ...]
    nested: bool

    @property
    def has_label(self) -> bool:
        return True

    @property
    def mask(self) -> Path:
        """The first label's mask (what single-mask code paths name)."""
        return self.masks[0]

    def foregrounds(self) -> tuple[list[np.ndarray], object]:
        """Each label's binary mask, by its rule, and the first mask's properties."""
        masks, properties = [], None
        for path, rule in zip(self.masks, self.mask_rules, strict=True):
            mask, props, _ = read_mask_channel(path, rule.channel)
            if masks and mask.shape != masks[0].shape:
                raise LeafnetError(f"{path}: size {mask.shape} differs from "
                                   f"{self.masks[0]} {masks[0].shape}")
            masks.append(rule.to_label(mask, path).astype(bool))
            properties = props if properties is None else properties
        return masks, properties

    def label(self) -> tuple[np.ndarray, object]:
        """The painted label image and the first mask's properties."""
        foregrounds, properties = self.foregrounds()
        label = np.zeros(foregrounds[0].shape, np.uint8)
        for value, (path, foreground) in enumerate(zip(self.masks, foregrounds, strict=True), 1):
            if not self.nested:
                overlap = int((foreground & (label > 0)).sum())
                if overlap:
                    raise LeafnetError(
                        f"{path}: {self.names[value - 1]} overlaps an earlier label in "
                        f"{overlap} pixels of case {self.case_id}; mutually exclusive labels "
                        "may not overlap. If each mask contains the next (disc and cup), "
                        "pass --nested")
            label[foreground] = value
        return label, properties

    def write(self, image_path: Path, label_path: Path | None) -> None:
        self.image_rule.write(self.image, image_path)
        if label_path is not None:
            label, properties = self.label()
            write_label(label_path, label, properties)


def label_folder_cases(images: Path, masks: dict[str, Path], subset: str,
                       image_rule: ImageRule, affixes: Sequence[tuple[str, str]],
                       nested: bool) -> list[LabelFolderCase]:
    """One case per image, with its mask from every folder (pair_by_stem refuses an image
    without a mask in a folder, or a mask without an image, naming them)."""
    names = tuple(masks)
    found: dict[str, dict[str, tuple[Path, Path]]] = {}
    for name, folder in masks.items():
        for stem, image, mask in pair_by_stem(images, folder, affixes):
            found.setdefault(stem, {})[name] = (image, mask)
    return [LabelFolderCase(case_id(stem), subset, by_name[names[0]][0],
                            tuple(by_name[name][1] for name in names), image_rule, (), names,
                            nested)
            for stem, by_name in sorted(found.items())]


def decide_folder_rules(cases: list[LabelFolderCase], thresholds: dict[str, float],
                        mask_channel: int | None, num_processes: int | None,
                        show_progress: bool) -> list[LabelFolderCase]:
    """Each label folder's binarising rule, decided from all its masks (or its threshold) and
    printed; the cases with their rules."""
    names = cases[0].names
    rules = []
    for index, name in enumerate(names):
        facts = survey_masks([case.masks[index] for case in cases], mask_channel,
                             num_processes, show_progress)
        rule = decide_mask_rule(facts, 2, thresholds.get(name), None, mask_channel)
        print(f"{name}: {rule.statement}", flush=True)
        rules.append(rule)
    return [LabelFolderCase(c.case_id, c.subset, c.image, c.masks, c.image_rule, tuple(rules),
                            c.names, c.nested) for c in cases]


def label_folder_labels(names: Sequence[str], nested: bool) -> tuple[dict[str, int],
                                                                      dict[str, list[int]]]:
    """dataset.json's labels (value i for the i-th name) and, when nested, its regions."""
    labels = {"background": 0, **{name: value for value, name in enumerate(names, 1)}}
    regions = ({name: list(range(value, len(names) + 1)) for value, name in
                enumerate(names, 1)} if nested else {})
    return labels, regions


@dataclass(frozen=True)
class Nesting:
    """How one inner mask of a case sits in its outer mask: pixels of each, and those of
    each lying outside the other."""

    case_id: str
    outer: str
    inner: str
    inner_pixels: int
    inner_outside: int
    outer_pixels: int
    outer_outside: int

    @property
    def broken(self) -> bool:
        return self.inner_outside > max(NEST_TOLERANCE_PIXELS,
                                        NEST_TOLERANCE * self.inner_pixels)

    @property
    def reversed(self) -> bool:
        """The outer mask lies inside the inner one: the two were given the other way round."""
        return self.outer_pixels > 0 and self.outer_outside <= max(
            NEST_TOLERANCE_PIXELS, NEST_TOLERANCE * self.outer_pixels)


def _case_nesting(case: LabelFolderCase) -> list[Nesting]:
    """The :class:`Nesting` of each consecutive pair of masks of ``case`` (picklable)."""
    masks, _ = case.foregrounds()
    return [Nesting(case.case_id, case.names[i], case.names[i + 1], int(inner.sum()),
                    int((inner & ~outer).sum()), int(outer.sum()), int((outer & ~inner).sum()))
            for i, (outer, inner) in enumerate(zip(masks, masks[1:]))]


def check_nesting(cases: list[LabelFolderCase], num_processes: int | None,
                  show_progress: bool) -> None:
    """Refuse ``--nested`` masks where an inner mask is not inside the one before it (more than
    ``NEST_TOLERANCE`` of it outside), naming the cases; masks given in the reverse order
    (cup before disc) are said to be so."""
    found = parallel_map(_case_nesting, cases, num_processes, "checking the nesting",
                         show_progress)
    broken = [item for items in found for item in items if item.broken]
    if not broken:
        return
    first = broken[0]
    shown = "; ".join(f"{b.case_id}: {b.inner_outside / b.inner_pixels:.0%} of {b.inner} "
                      f"outside {b.outer}" for b in broken[:MAX_LISTED])
    more = f" ... and {len(broken) - MAX_LISTED} more" if len(broken) > MAX_LISTED else ""
    if all(b.reversed for b in broken):
        fix = (f"{first.inner} contains {first.outer} in these cases: the masks look given in the "
               f"reverse order; give the outer structure first: --masks {first.inner}=DIR "
               f"--masks {first.outer}=DIR")
    else:
        fix = (f"--nested needs each mask inside the one before it (up to {NEST_TOLERANCE:.0%} "
               "of it outside); give the masks outermost first, or leave out --nested for "
               "labels that do not nest")
    raise LeafnetError(f"--nested: in {len(broken)} of {len(cases)} cases a mask is not inside "
                       f"the one before it ({shown}{more}); painting would erase the outer "
                       f"label there. {fix}")
