"""ISIC 2018 Task 1: dermoscopic images with lesion masks."""

from __future__ import annotations

from pathlib import Path

from leafnet.dataset_conversion.descriptions import binary_description
from leafnet.dataset_conversion.file_cases import (
    ImageRule,
    MaskRule,
    output_image_ending,
    paired_cases,
)
from leafnet.dataset_conversion.source_layout import child, layout_error, require_source
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.verification import VerificationReport

DEFAULT_ID = 4
LAYOUT = """\
  SRC/ISIC2018_Task1-2_Training_Input/ISIC_*.jpg
  SRC/ISIC2018_Task1_Training_GroundTruth/ISIC_*_segmentation.png"""


def convert_isic2018(
    source: Path,
    dataset_id: int = DEFAULT_ID,
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
) -> tuple[Path, VerificationReport]:
    """Convert the ISIC 2018 Task 1 training set (2594 cases).

    The paper splits it 7:3 into train and test; leafnet keeps that test share and takes
    validation from the training part (train 0.63, val 0.07, test 0.3).
    """
    source = require_source(source)
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
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)
