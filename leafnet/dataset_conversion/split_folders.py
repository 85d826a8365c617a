"""Sources distributed as train/val/test folders, each with an images and a masks folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    MaskRule,
    paired_cases,
)
from leafnet.dataset_conversion.source_layout import child

_SPLITS = (
    (("train", "training"), "Tr"),
    (("val", "validation"), "Tr"),
    (("test", "testing"), "Ts"),
)


def has_split_folders(root: Path) -> bool:
    train = child(root, "train", "training")
    return train is not None and child(root, "test", "testing") is not None


def split_folder_cases(
    root: Path,
    image_rule: ImageRule,
    mask_rule: MaskRule,
    mask_folder_names: Sequence[str] = ("masks", "mask"),
) -> tuple[list[FileCase], dict[str, Any]] | None:
    """Cases from ``root/{train,val,test}/{images,masks}`` and the split rule they imply.

    train and val go to imagesTr with val named in ``val_cases`` (the distributor's own
    validation set is kept); test goes to imagesTs. Without a val folder, 10% of train is
    carved out by planning. Returns None when a present split folder lacks images or masks.
    """
    tasks: list[FileCase] = []
    val_cases: list[str] = []
    for names, subset in _SPLITS:
        folder = child(root, *names)
        if folder is None:
            continue
        images, masks = child(folder, "images"), child(folder, *mask_folder_names)
        if images is None or masks is None:
            return None
        cases = paired_cases(images, masks, subset, image_rule, mask_rule)
        if names[0] == "val":
            val_cases = [case.case_id for case in cases]
        tasks += cases
    split: dict[str, Any] = {"rule": "official_test", "val_cases": val_cases}
    if not val_cases:
        split = {"rule": "official_test", "val": 0.1}
    return tasks, split
