"""Several mask folders, one per label (``--masks disc=DIR --masks cup=DIR``), as one label image.

Each folder is binarised by its own rule (decided from its masks and printed, or given with
``--threshold NAME=T``); label ``i`` (1-based, in the order given) is painted where mask ``i`` is
set, later labels over earlier ones. Mutually exclusive labels may not overlap: an overlap is
an error naming the case. ``nested`` declares that each mask contains the next ones (the optic
disc contains the cup): the labels become nnU-Net regions, label ``i``'s region being the values
``i..N``, so region ``i`` is exactly the union of masks ``i..N``.
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
from leafnet.imageio.mask_rule import MaskRule, decide_mask_rule, read_mask_channel, survey_masks


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

    def label(self) -> tuple[np.ndarray, object]:
        """The painted label image and the first mask's properties."""
        label, properties = None, None
        for value, (path, rule) in enumerate(zip(self.masks, self.mask_rules, strict=True), 1):
            mask, props, _ = read_mask_channel(path, rule.channel)
            foreground = rule.to_label(mask, path).astype(bool)
            if label is None:
                label, properties = np.zeros(foreground.shape, np.uint8), props
            elif foreground.shape != label.shape:
                raise LeafnetError(f"{path}: size {foreground.shape} differs from "
                                   f"{self.masks[0]} {label.shape}")
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
