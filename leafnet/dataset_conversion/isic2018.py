"""ISIC 2018 Task 1: dermoscopic images with lesion masks."""

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
from leafnet.raw_format import DatasetDescription

LAYOUT = """\
  SRC/ISIC2018_Task1-2_Training_Input/ISIC_*.jpg
  SRC/ISIC2018_Task1_Training_GroundTruth/ISIC_*_segmentation.png"""


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """The ISIC 2018 Task 1 training set (2594 cases).

    The paper splits it 7:3 into train and test; leafnet keeps that test share and takes
    validation from the training part (train 0.63, val 0.07, test 0.3).
    """
    images = child(source, "ISIC2018_Task1-2_Training_Input")
    masks = child(source, "ISIC2018_Task1_Training_GroundTruth")
    if images is None or masks is None:
        raise layout_error(source, LAYOUT)
    tasks = paired_cases(images, masks, "Tr", ImageRule(3), MaskRule(threshold=128),
                         affixes=(("", "_segmentation"),))
    description = binary_description(
        "ISIC2018", "lesion", {"rule": "ratio", "train": 0.63, "val": 0.07, "test": 0.3},
        image_ending=output_image_ending(tasks),
        description="ISIC 2018 Task 1 lesion boundary segmentation (training set)",
        reference="Codella et al., arXiv:1902.03368; Tschandl et al., Sci. Data 2018",
        licence="CC-BY-NC 4.0",
    )
    return tasks, description


ISIC2018 = PublicSource("ISIC 2018 Task 1 skin lesions", 4, LAYOUT, collect)
