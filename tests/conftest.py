"""Shared fixtures: isolated leafnet folders and small datasets written file by file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDER_VARIABLES = ("LEAFNET_RAW", "LEAFNET_PREPROCESSED", "LEAFNET_RESULTS", "LEAFNET_WEIGHTS")


@contextmanager
def planned_tiny_demo(root: Path, num_cases: int) -> Iterator[pytest.MonkeyPatch]:
    """leafnet folders under ``root`` holding the demo dataset (64 px) planned for the tiny
    preset; yields the patch that points at them, for module fixtures that train inside it."""
    from leafnet.dataset_conversion import convert_demo
    from leafnet.planning import plan_and_preprocess

    with pytest.MonkeyPatch.context() as patch:
        for variable in FOLDER_VARIABLES:
            patch.setenv(variable, str(root / variable.lower()))
        convert_demo(num_cases=num_cases, size=64, num_processes=1, show_progress=False)
        plan_and_preprocess(999, num_processes=1, preset="tiny", target_size=(64, 64),
                            show_progress=False)
        yield patch


def point_folders_at(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``root``'s leafnet folders (made by a module fixture) this test's folders."""
    for variable in FOLDER_VARIABLES:
        monkeypatch.setenv(variable, str(root / variable.lower()))
    return root


@pytest.fixture(autouse=True)
def leafnet_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point every leafnet folder into the test's temporary directory."""
    folders = {}
    for variable in FOLDER_VARIABLES:
        folder = tmp_path / variable.lower()
        folder.mkdir()
        monkeypatch.setenv(variable, str(folder))
        folders[variable] = folder
    monkeypatch.setenv("LEAFNET_NUM_PROCESSES", "2")
    return folders


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    """Write an (H, W) or (H, W, C) array with Pillow, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(path)
    return path


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def disc_mask(height: int, width: int, foreground: int = 1) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 3) ** 2
    return (inside * foreground).astype(np.uint8)


def make_raw_dataset(
    root: Path, name: str = "Dataset010_Toy", num_cases: int = 6, size: tuple[int, int] = (24, 32)
) -> Path:
    """A valid binary RGB dataset written directly (not through a converter)."""
    folder = root / name
    folder.mkdir(parents=True)
    for index in range(num_cases):
        save(folder / "imagesTr" / f"case{index:02d}_0000.png", rgb(*size, seed=index))
        save(folder / "labelsTr" / f"case{index:02d}.png", disc_mask(*size))
    dataset_json = {
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": {"background": 0, "foreground": 1},
        "numTraining": num_cases,
        "file_ending": ".png",
        "leafnet_split": {"rule": "ratio", "train": 0.6, "val": 0.2, "test": 0.2},
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    return folder
