"""REFUGE2 (Fang et al.): fundus photographs with optic disc and cup masks; the cup is the target.

REFUGE masks use 0 = optic cup, 128 = disc rim, 255 = background; the cup becomes label 1.
"""

from __future__ import annotations

from pathlib import Path

from leafnet.dataset_conversion.descriptions import binary_description
from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    MaskRule,
    output_image_ending,
)
from leafnet.dataset_conversion.public_source import PublicSource
from leafnet.dataset_conversion.source_layout import child, layout_error
from leafnet.dataset_conversion.split_folders import (
    has_split_folders,
    split_folder_cases,
)
from leafnet.raw_format import DatasetDescription

LAYOUT = """\
  SRC/{train,val,test}/images/*.{jpg,png} + SRC/{train,val,test}/mask/*.{bmp,png}
  (SDSeg's partition of REFUGE2: 400 test images; 'masks' and 'training'/'validation'/'testing'
  are accepted too, SRC may also be the folder that holds REFUGE2/; test becomes imagesTs)"""

CUP_RULE = MaskRule(threshold=64, foreground_below=True)


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """The train/val/test partition: train+val to imagesTr (val kept as validation).

    The cup is taken as mask values below 64 (halfway between cup 0 and rim 128), which is
    exact for the lossless BMP/PNG masks and robust to resampled ones.
    """
    root = child(source, "REFUGE2") or source
    found = split_folder_cases(root, ImageRule(3), CUP_RULE) if has_split_folders(root) else None
    if found is None:
        raise layout_error(source, LAYOUT)
    tasks, split = found
    description = binary_description(
        "REFUGE2", "optic_cup", split, image_ending=output_image_ending(tasks),
        description="REFUGE2 optic cup segmentation (cup = mask value 0 in the REFUGE "
        "convention); SDSeg's train/val/test partition",
        reference="Fang et al., REFUGE2 Challenge, arXiv:2202.08994",
    )
    return tasks, description


REFUGE2 = PublicSource("REFUGE2 optic cup", 1, LAYOUT, collect)
