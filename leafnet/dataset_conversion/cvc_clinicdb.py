"""CVC-ClinicDB (Bernal et al., 2015): 612 colonoscopy frames with polyp masks."""

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
  SRC/Original/*.tif + "SRC/Ground Truth/*.tif"     (official TIFF release)
  SRC/PNG/Original/*.png + "SRC/PNG/Ground Truth/*.png" (PNG variant; also SRC/TIF/...,
  or SRC/CVC-ClinicDB/...)"""


def _find_pair_folders(source: Path) -> tuple[Path, Path] | None:
    root = child(source, "CVC-ClinicDB") or source
    for candidate in (root, child(root, "TIF"), child(root, "PNG")):
        if candidate is None:
            continue
        original = child(candidate, "Original")
        truth = child(candidate, "Ground Truth", "GroundTruth", "Ground_Truth")
        if original and truth:
            return original, truth
    return None


def collect(source: Path) -> tuple[list[FileCase], DatasetDescription]:
    """The TIFF release (preferred when both exist) or the PNG variant; split 80:10:10."""
    folders = _find_pair_folders(source)
    if folders is None:
        raise layout_error(source, LAYOUT)
    tasks = paired_cases(*folders, "Tr", ImageRule(3), MaskRule(threshold=128), id_prefix="cvc_")
    description = binary_description(
        "CVCClinicDB", "polyp", {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1},
        image_ending=output_image_ending(tasks),
        description="CVC-ClinicDB polyp segmentation; masks binarised at 128",
        reference="Bernal et al., WM-DOVA maps for accurate polyp highlighting in "
        "colonoscopy, CMIG 2015",
    )
    return tasks, description


CVC_CLINICDB = PublicSource("CVC-ClinicDB polyps", 2, LAYOUT, collect)
