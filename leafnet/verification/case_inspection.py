"""Reading one case's files and recording what the integrity check needs to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafnet.imageio import ImageReadError, read_array
from leafnet.raw_format import CaseFiles


@dataclass
class FileFacts:
    """What reading one file showed; ``error`` is set when it could not be read."""

    path: Path
    shape: tuple[int, int] | None = None
    channels: int = 0
    has_alpha: bool = False
    mode: str | None = None
    values: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class CaseFacts:
    case_id: str
    images: list[FileFacts]
    label: FileFacts | None


def _unique_values(array: np.ndarray) -> list[float]:
    if array.dtype == np.uint8:
        return [float(v) for v in np.flatnonzero(np.bincount(array.ravel(), minlength=256))]
    return [float(v) for v in np.unique(array)]


def _inspect_file(path: Path, is_label: bool) -> FileFacts:
    try:
        array, properties = read_array(path, palette_as_index=is_label)
    except ImageReadError as error:
        return FileFacts(path, error=str(error).removeprefix(f"{path}: "))
    facts = FileFacts(
        path,
        shape=properties.shape,
        channels=properties.channels,
        has_alpha=properties.has_alpha,
        mode=properties.mode,
    )
    if is_label:
        facts.values = _unique_values(array[0] if array.shape[0] == 1 else array)
    return facts


def inspect_case(case: CaseFiles) -> CaseFacts:
    """Read every file of ``case`` (run in a worker process by the integrity check)."""
    images = [_inspect_file(path, is_label=False) for path in case.images]
    label = _inspect_file(case.label, is_label=True) if case.label is not None else None
    return CaseFacts(case.case_id, images, label)
