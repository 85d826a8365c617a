"""Grouping the files of imagesTr/labelsTr (or imagesTs/labelsTs) into cases."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from leafnet.imageio import file_ending, strip_ending

_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class CaseFiles:
    """The image files (in channel order) and label file of one case; either may be missing."""

    case_id: str
    images: list[Path] = field(default_factory=list)
    label: Path | None = None


@dataclass
class CaseListing:
    """Cases of one subset, plus the files that do not fit the naming scheme."""

    cases: dict[str, CaseFiles]
    misnamed_images: list[Path]
    wrong_ending: list[Path]


def _visible_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def list_cases(
    dataset_folder: Path, subset: str, image_ending: str, label_ending: str
) -> CaseListing:
    """Group ``images{subset}/CASE_XXXX{image_ending}`` and ``labels{subset}/CASE{label_ending}``.

    ``subset`` is ``"Tr"`` or ``"Ts"``. Files with another ending, or image files without the
    ``_XXXX`` channel suffix, are returned separately so that the integrity check can name them.
    """
    cases: dict[str, CaseFiles] = {}
    misnamed: list[Path] = []
    wrong_ending: list[Path] = []
    for path in _visible_files(dataset_folder / f"images{subset}"):
        if file_ending(path) != image_ending:
            wrong_ending.append(path)
            continue
        match = _CHANNEL_SUFFIX.match(strip_ending(path.name))
        if match is None:
            misnamed.append(path)
            continue
        case = cases.setdefault(match.group("case"), CaseFiles(match.group("case")))
        case.images.append(path)
    for path in _visible_files(dataset_folder / f"labels{subset}"):
        if file_ending(path) != label_ending:
            wrong_ending.append(path)
            continue
        case_id = strip_ending(path.name)
        cases.setdefault(case_id, CaseFiles(case_id)).label = path
    for case in cases.values():
        case.images.sort()
    return CaseListing(dict(sorted(cases.items())), misnamed, wrong_ending)


def dataset_cases(
    dataset_folder: Path, image_ending: str, label_ending: str
) -> dict[str, dict[str, CaseFiles]]:
    """The cases of imagesTr and (if present) imagesTs, by subset, for a verified dataset."""
    subsets = {}
    for subset in ("Tr", "Ts"):
        if (dataset_folder / f"images{subset}").is_dir():
            listing = list_cases(dataset_folder, subset, image_ending, label_ending)
            subsets[subset] = {c.case_id: c for c in listing.cases.values() if c.images}
    return subsets
