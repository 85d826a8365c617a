"""The preprocessed folder of one case: ``CASE.npy`` (image), ``CASE_seg.npy`` (label) and
``CASE.json`` (properties, written last, so its presence marks a finished case)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.paths import plain_name


@dataclass
class PreprocessedCase:
    """Memory-mapped arrays of one case and its properties."""

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    properties: dict[str, Any]


def case_paths(folder: Path, case_id: str) -> dict[str, Path]:
    """The three files of ``case_id``; an id that is not a plain name is refused."""
    plain_name(case_id, "case id", folder)
    return {
        "image": folder / f"{case_id}.npy",
        "label": folder / f"{case_id}_seg.npy",
        "properties": folder / f"{case_id}.json",
    }


def load_preprocessed_case(folder: Path, case_id: str, memory_map: bool = True) -> PreprocessedCase:
    """Open one preprocessed case (arrays memory-mapped unless ``memory_map`` is False)."""
    paths = case_paths(folder, case_id)
    properties = json.loads(paths["properties"].read_text())
    mode = "r" if memory_map else None
    image = np.load(paths["image"], mmap_mode=mode)
    label = np.load(paths["label"], mmap_mode=mode) if properties["has_label"] else None
    return PreprocessedCase(case_id, image, label, properties)
