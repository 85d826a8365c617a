"""REFUGE2 (Fang et al.): fundus photographs with optic disc and cup masks.

REFUGE masks use 0 = optic cup, 128 = disc rim, 255 = background. Both structures are kept as
nested regions (nnU-Net's format): label 1 = rim, 2 = cup; the region ``disc`` = {1, 2}
contains the region ``cup`` = {2}. The paper segments the cup alone: plan with
``leafnet_plan_and_preprocess -d ID --labels cup``.
"""

from __future__ import annotations

from pathlib import Path

from leafnet.dataset_conversion.descriptions import RGB_CHANNELS
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
from leafnet.raw_format import ONE_MASK_FOLDER, DatasetDescription, SourceMaskRules

LAYOUT = """\
  SRC/{train,val,test}/images/*.{jpg,png} + SRC/{train,val,test}/mask/*.{bmp,png}
  (SDSeg's partition of REFUGE2: 400 test images; 'masks' and 'training'/'validation'/'testing'
  are accepted too, SRC may also be the folder that holds REFUGE2/; test becomes imagesTs)"""

DISC_AND_CUP_RULE = MaskRule(
    bands=((64, 2), (192, 1), (256, 0)),
    statement="REFUGE grey levels: below 64 -> cup (2), 64-191 -> disc rim (1), 192 and above "
              "-> background (0)")


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """The train/val/test partition: train+val to imagesTr (val kept as validation).

    The grey levels are split halfway between cup 0, rim 128 and background 255, which is exact
    for the lossless BMP/PNG masks and robust to resampled ones.
    """
    root = child(source, "REFUGE2") or source
    found = (split_folder_cases(root, ImageRule(3), DISC_AND_CUP_RULE)
             if has_split_folders(root) else None)
    if found is None:
        raise layout_error(source, LAYOUT)
    tasks, split = found
    description = DatasetDescription(
        name="REFUGE2", channel_names=RGB_CHANNELS,
        labels={"background": 0, "disc": 1, "cup": 2}, num_training=0, file_ending=".png",
        image_file_ending=output_image_ending(tasks), split=split,
        regions={"disc": [1, 2], "cup": [2]},
        extra={"description": "REFUGE2 optic disc and cup as nested regions (disc = rim + "
               "cup); SDSeg's train/val/test partition. The paper's task is the cup alone: "
               "leafnet_plan_and_preprocess -d ID --labels cup",
               "reference": "Fang et al., REFUGE2 Challenge, arXiv:2202.08994"},
        mask_rules=SourceMaskRules(DISC_AND_CUP_RULE.statement,
                                   {ONE_MASK_FOLDER: DISC_AND_CUP_RULE}),
    )
    return tasks, description


REFUGE2 = PublicSource("REFUGE2 optic disc and cup", 1, LAYOUT, collect)
