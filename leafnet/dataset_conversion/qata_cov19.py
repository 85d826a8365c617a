"""QaTa-COV19 (Degerli et al.): chest X-rays with COVID-19 infection masks."""

from __future__ import annotations

from pathlib import Path

from leafnet.dataset_conversion.descriptions import binary_description
from leafnet.dataset_conversion.file_cases import (
    FileCase,
    ImageRule,
    MaskRule,
    paired_cases,
)
from leafnet.dataset_conversion.public_source import PublicSource
from leafnet.dataset_conversion.source_layout import child, layout_error
from leafnet.raw_format import DatasetDescription

LAYOUT = """\
  "SRC/Train Set/Images/*.png" + "SRC/Train Set/Ground-truths/mask_*.png"
  "SRC/Test Set/Images/*.png"  + "SRC/Test Set/Ground-truths/mask_*.png"   (becomes imagesTs)
  (SRC may also be the folder that holds QaTa-COV19-v2/ or QaTa-COV19/)"""


def _root(source: Path) -> Path:
    for name in ("QaTa-COV19-v2", "QaTa-COV19"):
        nested = child(source, name)
        if nested is not None and child(nested, "Train Set"):
            return nested
    return source


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """Both official sets: Train Set to imagesTr, Test Set to imagesTs.

    Images become single-channel (X-rays saved as RGB are reduced to gray), and 20% of
    the training set is held out for validation, as in LViT's protocol that SDSeg follows.
    """
    root = _root(source)
    tasks: list[FileCase] = []
    for set_name, subset in (("Train Set", "Tr"), ("Test Set", "Ts")):
        folder = child(root, set_name)
        images, masks = child(folder, "Images"), child(folder, "Ground-truths", "Ground-truth")
        if images is None or masks is None:
            raise layout_error(source, LAYOUT)
        tasks += paired_cases(images, masks, subset, ImageRule(1), MaskRule(threshold=128),
                              affixes=(("mask_", ""),))
    description = binary_description(
        "QaTaCOV19", "infection", {"rule": "official_test", "val": 0.2}, channels=1,
        description="QaTa-COV19 COVID-19 infection segmentation on chest X-rays",
        reference="Degerli et al., OSegNet / QaTa-COV19, Qatar University and Tampere "
        "University; LViT (Li et al., IEEE TMI 2023) protocol",
    )
    return tasks, description


QATA_COV19 = PublicSource("QaTa-COV19 chest X-rays", 3, LAYOUT, collect)
