"""Kvasir-SEG (Jha et al., MMM 2020): colonoscopy frames with polyp masks (JPEG)."""

from __future__ import annotations

from pathlib import Path

from leafnet.dataset_conversion.descriptions import binary_description
from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    MaskRule,
    output_image_ending,
    paired_cases,
)
from leafnet.dataset_conversion.public_source import PublicSource
from leafnet.dataset_conversion.source_layout import child, layout_error
from leafnet.dataset_conversion.split_folders import (
    has_split_folders,
    split_folder_cases,
)
from leafnet.raw_format import DatasetDescription

LAYOUT = """\
  SRC/images/*.jpg + SRC/masks/*.jpg               (official release, also SRC/Kvasir-SEG/...)
  SRC/{train,val,test}/images/*.jpg + .../masks/*.jpg  (split folders; test becomes imagesTs)"""

IMAGE_RULE = ImageRule(channels=3)
MASK_RULE = MaskRule(threshold=128)


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """The flat official layout (ratio split 80:10:10) or the split-folder layout.

    Images are copied as they are (JPEG, no re-encoding); the JPEG masks are binarised at
    128 on their first channel and stored as PNG. With split folders, ``test`` becomes
    imagesTs/labelsTs and ``val`` stays the validation set.
    """
    root = child(source, "Kvasir-SEG") or source
    found = None
    if child(root, "images") and child(root, "masks"):
        tasks = paired_cases(child(root, "images"), child(root, "masks"), "Tr", IMAGE_RULE,
                             MASK_RULE)
        found = tasks, {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1}
    elif has_split_folders(root):
        found = split_folder_cases(root, IMAGE_RULE, MASK_RULE)
    if found is None:
        raise layout_error(source, LAYOUT)
    tasks, split = found
    description = binary_description(
        "KvasirSEG", "polyp", split, image_ending=output_image_ending(tasks),
        description="Kvasir-SEG polyp segmentation; JPEG masks binarised at 128",
        reference="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020",
        licence="research and education use; cite the paper",
    )
    return tasks, description


KVASIR_SEG = PublicSource("Kvasir-SEG polyps", 5, LAYOUT, collect)
