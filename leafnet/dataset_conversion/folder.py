"""Any pair of image and mask folders, matched by file name."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from leafnet.dataset_conversion.descriptions import GRAY_CHANNELS, RGB_CHANNELS
from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    output_image_ending,
    paired_cases,
)
from leafnet.dataset_conversion.label_folders import (
    check_nesting,
    decide_folder_rules,
    label_folder_cases,
    label_folder_labels,
)
from leafnet.imageio.mask_facts import survey_masks
from leafnet.imageio.mask_rule import MaskRule, decide_mask_rule
from leafnet.imageio.read_write import image_header
from leafnet.dataset_conversion.source_layout import image_files, require_source
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.errors import LeafnetError
from leafnet.imageio import SITK_ENDINGS, file_ending, read_array
from leafnet.raw_format import (
    ONE_MASK_FOLDER,
    DatasetDescription,
    SourceMaskRules,
    split_rule_problems,
)
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


def _affixes(prefix: str | None, suffix: str | None) -> Sequence[tuple[str, str]]:
    return ((prefix or "", suffix or ""),) if (prefix or suffix) else DEFAULT_AFFIXES


def _channels(channels: int | None, images: Path) -> int:
    """``channels``, by default the first image's (grayscale 1, anything else 3)."""
    if channels is None:
        first_image = next(iter(image_files(images)), None)
        if first_image is None:
            image_files(images, note_skipped=True)
            raise LeafnetError(f"no images found in {images}")
        channels = _detect_channels(first_image)
    if channels not in (1, 3):
        raise LeafnetError(f"--channels must be 1 (grayscale) or 3 (RGB), found {channels}")
    return channels


def _detect_channels(image: Path) -> int:
    if file_ending(image) in SITK_ENDINGS:
        return read_array(image)[1].channels
    return 1 if image_header(image)[0] in ("1", "L", "LA", "I", "I;16", "F") else 3


def parse_named(text: str, kind: type = Path) -> tuple[str | None, object]:
    """``NAME=VALUE`` (one label's folder or threshold) or a plain ``VALUE``."""
    name, _, value = text.rpartition("=")
    try:
        return (name or None), kind(value)
    except ValueError:
        raise LeafnetError(f"'{text}' is not understood; use VALUE or NAME=VALUE") from None


def named_option(items: Sequence[tuple[str | None, Any]] | None, option: str) -> Any:
    """A repeated ``VALUE`` / ``NAME=VALUE`` option: one plain value, or a dict by name."""
    if not items:
        return None
    if len(items) == 1 and items[0][0] is None:
        return items[0][1]
    names = [name for name, _ in items]
    if None in names or len(set(names)) != len(names) or "background" in names:
        raise LeafnetError(f"with several labels every {option} needs its own label name, "
                           f"NAME=VALUE (distinct, not background); found "
                           f"{[f'{n}={v}' if n else str(v) for n, v in items]}")
    return dict(items)


def convert_label_folders(images: Path, masks: dict[str, Path], dataset_id: int, name: str,
                          thresholds: dict[str, float], nested: bool,
                          mask_channel: int | None, channels: int,
                          test: tuple[Path, dict[str, Path]] | None, split: dict[str, Any],
                          affixes: Sequence[tuple[str, str]], overwrite: bool,
                          num_processes: int | None,
                          show_progress: bool) -> tuple[Path, VerificationReport]:
    """One mask folder per label (label_folders.py), labels numbered in the order given."""
    image_rule = ImageRule(channels)
    tasks = label_folder_cases(images, masks, "Tr", image_rule, affixes, nested)
    if test is not None:  # by label name, in the order of --masks (that numbers the labels)
        tasks += label_folder_cases(require_source(test[0]),
                                    {name: require_source(test[1][name]) for name in masks},
                                    "Ts", image_rule, affixes, nested)
    tasks = decide_folder_rules(tasks, thresholds, mask_channel, num_processes, show_progress)
    if nested:
        check_nesting(tasks, num_processes, show_progress)
    labels, regions = label_folder_labels(list(masks), nested)
    description = DatasetDescription(
        name=name, channel_names=RGB_CHANNELS if channels == 3 else GRAY_CHANNELS,
        labels=labels, num_training=0, file_ending=".png",
        image_file_ending=output_image_ending(tasks), split=split,
        extra={"description": f"converted from {images} and the label folders "
               + ", ".join(f"{k}={v}" for k, v in masks.items())},
        regions=regions,
        mask_rules=SourceMaskRules(
            ("nested: " if nested else "exclusive: ") + "; ".join(
                f"{label} = {rule.statement}"
                for label, rule in zip(masks, tasks[0].mask_rules, strict=True)),
            dict(zip(masks, tasks[0].mask_rules, strict=True))))
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)


def convert_folder(
    images: Path,
    masks: Path | dict[str, Path],
    dataset_id: int,
    name: str,
    labels: Sequence[str] | None = None,
    mask_prefix: str | None = None,
    mask_suffix: str | None = None,
    threshold: float | dict[str, float] | None = None,
    label_map: tuple[tuple[int, int], ...] | None = None,
    mask_channel: int | None = None,
    channels: int | None = None,
    test_images: Path | None = None,
    test_masks: Path | dict[str, Path] | None = None,
    split: dict[str, Any] | None = None,
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
    nested: bool = False,
) -> tuple[Path, VerificationReport]:
    """Convert images and masks matched by stem (mask = prefix + image stem + suffix).

    Without a prefix or suffix, masks named ``STEM``, ``mask_STEM``, ``STEM_segmentation``
    and ``STEM_mask`` are found. ``channels`` defaults to the first image's (grayscale 1,
    anything else 3). The masks are read by one rule for the whole dataset, decided from all of
    them and printed (see :func:`decide_mask_rule`); ``threshold``, ``label_map`` and
    ``mask_channel`` state it explicitly. ``masks`` as a dict (label name -> folder, with
    ``threshold`` and ``test_masks`` dicts by the same names) converts one binary mask folder
    per label (label_folders.py; ``nested`` for regions such as disc and cup).
    """
    if (test_images is None) != (test_masks is None):
        raise LeafnetError("give both --test-images and --test-masks, or neither")
    if split is None:
        split = ({"rule": "official_test", "val": 0.1} if test_images
                 else {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1})
    if isinstance(masks, dict):
        if label_map is not None:
            raise LeafnetError("--label-map reads one mask folder with several values; with one "
                               "folder per label give --threshold NAME=T per folder instead")
        if not isinstance(threshold, dict | None) or not isinstance(test_masks, dict | None) \
                or (test_masks is not None and set(test_masks) != set(masks)):
            raise LeafnetError(f"with one mask folder per label ({', '.join(masks)}), "
                               "--threshold and --test-masks name their label: NAME=VALUE, "
                               "one --test-masks per label")
        unknown = sorted(set(threshold or {}) - set(masks))
        if unknown:
            raise LeafnetError(f"--threshold {unknown[0]}=...: no mask folder is named "
                               f"{unknown[0]}; the labels are {', '.join(masks)}")
        if labels is not None and list(labels) != ["background", *masks]:
            raise LeafnetError("--labels names the values of one mask folder; with --masks "
                               f"NAME=DIR the folders' names are the labels ({', '.join(masks)})"
                               ": leave --labels out")
        problems = split_rule_problems(split, has_test_set=test_images is not None)
        if problems:
            raise LeafnetError("; ".join(problems))
        images = require_source(images)
        return convert_label_folders(
            images, {k: require_source(v) for k, v in masks.items()}, dataset_id, name,
            threshold or {}, nested, mask_channel, _channels(channels, images),
            (test_images, test_masks) if test_images is not None else None, split,
            _affixes(mask_prefix, mask_suffix), overwrite, num_processes, show_progress)
    if nested:
        raise LeafnetError("--nested describes several mask folders (--masks NAME=DIR ...)")
    if isinstance(threshold, dict) or isinstance(test_masks, dict):
        raise LeafnetError("--threshold NAME=T and --test-masks NAME=DIR name a label's mask "
                           "folder, but --masks gives one folder: give --threshold T and "
                           "--test-masks DIR")
    labels = list(labels or ("background", "foreground"))
    images, masks = require_source(images), require_source(masks)
    if len(labels) < 2 or labels[0] != "background":
        raise LeafnetError(f"--labels must start with background and name at least one more "
                           f"label, found {list(labels)}")
    affixes = _affixes(mask_prefix, mask_suffix)
    undecided = MaskRule()
    channels = _channels(channels, images)
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
        extra={"description": f"converted from {images} and {masks}"},
        mask_rules=SourceMaskRules(mask_rule.statement, {ONE_MASK_FOLDER: mask_rule}),
    )
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)
