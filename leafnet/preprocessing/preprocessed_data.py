"""The preprocessed folder of one case: ``CASE.npy`` (image), ``CASE_seg.npy`` (label) and
``CASE.json`` (properties, written last, so its presence marks a finished case); and a list of
cases as network inputs, read by training and by the teacher feature cache alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.paths import plain_name
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.normalization import to_network_input


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


def array_problem(folder: Path, case_id: str, size_hw: tuple[int, int]) -> str | None:
    """What is wrong with a finished case's arrays (None when nothing): missing, truncated or
    not an array file, or not the ``size_hw`` the plans ask for. Only the headers are read."""
    paths = case_paths(folder, case_id)
    try:
        properties = json.loads(paths["properties"].read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"its properties cannot be read ({error})"
    wanted = ["image"] + (["label"] if properties.get("has_label") else [])
    for name in wanted:
        path = paths[name]
        if not path.is_file():
            return f"{path.name} is missing"
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:
            return f"{path.name} is damaged ({error})"
        if tuple(array.shape[-2:]) != tuple(size_hw):
            return f"{path.name} has shape {tuple(array.shape)}, not the planned {tuple(size_hw)}"
    return None


def load_preprocessed_case(folder: Path, case_id: str, memory_map: bool = True) -> PreprocessedCase:
    """Open one preprocessed case (arrays memory-mapped unless ``memory_map`` is False)."""
    paths = case_paths(folder, case_id)
    properties = json.loads(paths["properties"].read_text())
    mode = "r" if memory_map else None
    image = np.load(paths["image"], mmap_mode=mode)
    label = np.load(paths["label"], mmap_mode=mode) if properties["has_label"] else None
    return PreprocessedCase(case_id, image, label, properties)


class PreprocessedCases:
    """Memory-mapped images and their labels coded as network masks, of a list of cases."""

    def __init__(self, folder: Path, case_ids: list[str], scheme: LabelScheme) -> None:
        self.folder = folder
        self.case_ids = list(case_ids)
        self.scheme = scheme
        self._cases: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.case_ids)

    def image_and_mask(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image in [-1, 1] ``(C, H, W)`` float32 and mask ``(1, H, W)`` float32 in {0, 1}."""
        if index not in self._cases:
            self._cases[index] = load_preprocessed_case(self.folder, self.case_ids[index])
        case = self._cases[index]
        image = to_network_input(case.image)
        return image, self.scheme.encode(case.label)


def apply_flip(array: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Flip the last two axes of ``array`` as ``flip = (vertical, horizontal)`` says."""
    axes = tuple(axis for axis, on in zip((-2, -1), flip, strict=True) if on)
    return np.flip(array, axis=axes).copy() if axes else array
