"""CVC-ClinicDB (Bernal et al., 2015): 612 colonoscopy frames with polyp masks."""

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

DEFAULT_ID = 2
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


def convert_cvc_clinicdb(
    source: Path,
    dataset_id: int = DEFAULT_ID,
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
) -> tuple[Path, VerificationReport]:
    """Convert CVC-ClinicDB (TIFF preferred over PNG when both exist); split 80:10:10."""
    source = require_source(source)
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
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)
