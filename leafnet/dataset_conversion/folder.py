"""Any pair of image and mask folders, matched by file name."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from leafnet.dataset_conversion.descriptions import GRAY_CHANNELS, RGB_CHANNELS
from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    output_image_ending,
    paired_cases,
)
from leafnet.imageio.mask_rule import MaskRule, decide_mask_rule, survey_masks
from leafnet.dataset_conversion.source_layout import image_files, require_source
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.errors import LeafnetError
from leafnet.imageio import SITK_ENDINGS, file_ending, read_array
from leafnet.raw_format import DatasetDescription, split_rule_problems
from leafnet.verification import VerificationReport

DEFAULT_AFFIXES = (("", ""), ("mask_", ""), ("", "_segmentation"), ("", "_mask"))


def parse_split(text: str) -> dict[str, Any]:
    """``ratio:0.8,0.1,0.1``, ``official_test:0.1`` or ``kfold:5`` as a ``leafnet_split`` rule."""
    rule, _, values = text.partition(":")
    with contextlib.suppress(ValueError):
        numbers = [float(v) for v in values.split(",") if v.strip()]
        if rule == "ratio" and len(numbers) == 3:
            return {"rule": "ratio", "train": numbers[0], "val": numbers[1], "test": numbers[2]}
        if rule == "official_test" and len(numbers) <= 1:
            return {"rule": "official_test", "val": numbers[0] if numbers else 0.1}
        if rule == "kfold" and len(numbers) == 1 and numbers[0].is_integer():
            return {"rule": "kfold", "folds": int(numbers[0])}
    raise LeafnetError(
        f"--split '{text}' is not understood; use ratio:TRAIN,VAL,TEST (e.g. ratio:0.8,0.1,0.1), "
        "official_test:VAL_FRACTION or kfold:K"
    )


def parse_label_map(text: str) -> tuple[tuple[int, int], ...]:
    """``0:0,255:1`` as ((0, 0), (255, 1))."""
    try:
        pairs = tuple(
            (int(src), int(dst))
            for src, dst in (item.split(":") for item in text.split(",") if item.strip())
        )
    except ValueError:
        raise LeafnetError(f"--label-map '{text}' is not understood; use SRC:DST,... "
                           "(e.g. 0:0,255:1)") from None
    if not pairs:
        raise LeafnetError("--label-map is empty; use SRC:DST,... (e.g. 0:0,255:1)")
    return pairs


def _detect_channels(image: Path) -> int:
    if file_ending(image) in SITK_ENDINGS:
        return read_array(image)[1].channels
    with Image.open(image) as opened:
        return 1 if opened.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def convert_folder(
    images: Path,
    masks: Path,
    dataset_id: int,
    name: str,
    labels: Sequence[str] = ("background", "foreground"),
    mask_prefix: str | None = None,
    mask_suffix: str | None = None,
    threshold: float | None = None,
    label_map: tuple[tuple[int, int], ...] | None = None,
    mask_channel: int | None = None,
    channels: int | None = None,
    test_images: Path | None = None,
    test_masks: Path | None = None,
    split: dict[str, Any] | None = None,
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
) -> tuple[Path, VerificationReport]:
    """Convert images and masks matched by stem (mask = prefix + image stem + suffix).

    Without a prefix or suffix, masks named ``STEM``, ``mask_STEM``, ``STEM_segmentation``
    and ``STEM_mask`` are found. ``channels`` defaults to the first image's (grayscale 1,
    anything else 3). The masks are read by one rule for the whole dataset, decided from all of
    them and printed (see :func:`decide_mask_rule`); ``threshold``, ``label_map`` and
    ``mask_channel`` state it explicitly.
    """
    images, masks = require_source(images), require_source(masks)
    if (test_images is None) != (test_masks is None):
        raise LeafnetError("give both --test-images and --test-masks, or neither")
    if len(labels) < 2 or labels[0] != "background":
        raise LeafnetError(f"--labels must start with background and name at least one more "
                           f"label, found {list(labels)}")
    affixes = ((mask_prefix or "", mask_suffix or ""),) if (mask_prefix or mask_suffix) \
        else DEFAULT_AFFIXES
    undecided = MaskRule()
    if channels is None:
        first_image = next(iter(image_files(images)), None)
        if first_image is None:
            image_files(images, note_skipped=True)
            raise LeafnetError(f"no images found in {images}")
        channels = _detect_channels(first_image)
    if channels not in (1, 3):
        raise LeafnetError(f"--channels must be 1 (grayscale) or 3 (RGB), found {channels}")
    image_rule = ImageRule(channels)
    tasks: list[FileCase] = paired_cases(images, masks, "Tr", image_rule, undecided, affixes)
    if test_images is not None and test_masks is not None:
        tasks += paired_cases(require_source(test_images), require_source(test_masks), "Ts",
                              image_rule, undecided, affixes)
    facts = survey_masks([task.mask for task in tasks if task.mask is not None], mask_channel,
                         num_processes, show_progress)
    mask_rule = decide_mask_rule(facts, len(labels), threshold, label_map, mask_channel)
    print(mask_rule.statement, flush=True)
    tasks = [replace(task, mask_rule=mask_rule) for task in tasks]
    if split is None:
        split = ({"rule": "official_test", "val": 0.1} if test_images
                 else {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1})
    problems = split_rule_problems(split, has_test_set=test_images is not None)
    if problems:
        raise LeafnetError("; ".join(problems))
    mask_ending = ".nii.gz" if file_ending(tasks[0].mask) in SITK_ENDINGS else ".png"
    description = DatasetDescription(
        name=name,
        channel_names=RGB_CHANNELS if channels == 3 else GRAY_CHANNELS,
        labels={label: value for value, label in enumerate(labels)},
        num_training=0,
        file_ending=mask_ending,
        image_file_ending=output_image_ending(tasks),
        split=split,
        extra={"description": f"converted from {images} and {masks}",
               "leafnet_mask_rule": mask_rule.statement},
    )
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)
