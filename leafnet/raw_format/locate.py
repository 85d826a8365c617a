"""Finding datasets by id or name under the raw folder."""

from __future__ import annotations

import re
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.paths import raw_root

_FOLDER_PATTERN = re.compile(r"^Dataset(\d{3})_([A-Za-z0-9_\-]+)$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset005_KvasirSEG`` from ``(5, "KvasirSEG")``; checks both parts."""
    if not 0 < dataset_id < 1000:
        raise LeafnetError(f"dataset id {dataset_id} is out of range; use 1 to 999")
    folder = f"Dataset{dataset_id:03d}_{name}"
    if not _FOLDER_PATTERN.match(folder):
        raise LeafnetError(
            f"dataset name '{name}' may only contain letters, digits, '_' and '-'"
        )
    return folder


def parse_dataset_id(dataset_id: str | int) -> int:
    """The integer id from ``5``, ``"005"`` or ``"Dataset005_KvasirSEG"``."""
    text = str(dataset_id)
    match = _FOLDER_PATTERN.match(text)
    if match:
        return int(match.group(1))
    if text.isdigit():
        return int(text)
    raise LeafnetError(
        f"'{dataset_id}' is not a dataset id; give a number (5) or a folder name "
        "(Dataset005_KvasirSEG)"
    )


def is_dataset_folder_name(name: str) -> bool:
    """Whether ``name`` is a ``DatasetXXX_Name`` folder name."""
    return _FOLDER_PATTERN.match(name) is not None


def dataset_number(dataset: str | int) -> str:
    """The three-digit id of a dataset (``"005"`` from ``Dataset005_KvasirSEG``), as commands
    take it after ``-d``."""
    return f"{parse_dataset_id(dataset):03d}"


def list_datasets(root: Path | None = None) -> dict[int, list[Path]]:
    """Every ``DatasetXXX_Name`` folder under ``root`` (the raw folder by default), by id."""
    root = raw_root() if root is None else root
    found: dict[int, list[Path]] = {}
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            match = _FOLDER_PATTERN.match(folder.name)
            if match and folder.is_dir():
                found.setdefault(int(match.group(1)), []).append(folder)
    return found


def find_dataset(dataset_id: str | int, root: Path | None = None) -> Path:
    """The folder of one raw dataset, or an error that lists what exists and how to add it."""
    root = raw_root() if root is None else root
    number = parse_dataset_id(dataset_id)
    datasets = list_datasets(root)
    matches = datasets.get(number, [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(folder.name for folder in matches)
        raise LeafnetError(
            f"several raw datasets have id {number:03d} in {root}: {names}; "
            "rename or remove all but one"
        )
    if datasets:
        existing = ", ".join(folder.name for folders in datasets.values() for folder in folders)
        listing = f"datasets found there: {existing}"
    else:
        listing = "no datasets were found there"
    raise LeafnetError(
        f"no raw dataset with id {number:03d} in {root} ({listing}). Create one with "
        "'leafnet_convert' (e.g. 'leafnet_convert demo' or 'leafnet_convert folder "
        f"--images DIR --masks DIR -d {number}'), or set LEAFNET_RAW to the folder that holds it"
    )
