"""Shared fixtures: isolated leafnet folders, small datasets written file by file, and the tiny
trained models that many tests start from, built once per test run.

Tests come in two tiers mirroring the packages: ``tests/unit/<package>/`` (functions and
commands on made-up inputs, seconds each) and ``tests/e2e/`` (datasets converted, planned,
trained, predicted and benchmarked through the commands). ``make test`` runs both, the e2e
modules first so that the two workers end on short modules."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from PIL import Image

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: each, and every command a test starts (an nnU-Net half, a
    # console script, a pool), computes on one thread; a second one only spins against the
    # other worker.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

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


# e2e modules that start first: the two that build the shared models (built_once) apart, so
# neither worker waits for the other's build, then the longest; the rest follow in file order.
FIRST_MODULES = ("test_fast_decoder.py", "test_continuation.py", "test_training.py",
                 "test_two_stages.py", "test_benchmark_versus_nnunet.py",
                 "test_benchmark_suite.py", "test_experiments.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e tier first (each module stays in one worker: --dist loadfile), FIRST_MODULES
    leading it, then the unit tier, each in file order."""
    def rank(item: pytest.Item) -> tuple[bool, int]:
        name = item.path.name
        return ("/e2e/" not in item.path.as_posix(),
                FIRST_MODULES.index(name) if name in FIRST_MODULES else len(FIRST_MODULES))

    items.sort(key=rank)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], None]) -> Path:
    """A folder that ``build`` fills, built once per test run: the first test worker to need it
    builds it under a file lock while the other waits, and each worker gets its own copy
    (mtimes kept, so preprocessed arrays stay up to date) to change as its tests like."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent / f"built_once_{name}"
    with FileLock(f"{shared}.lock"):
        if not (shared / ".built").is_file():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            build(shared)
            (shared / ".built").touch()
    copy = tmp_path_factory.mktemp(name)
    shutil.copytree(shared, copy, dirs_exist_ok=True)
    return copy


@pytest.fixture(scope="session")
def training_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo dataset (40 cases, 64 px) planned for the tiny preset, its first stages (the
    default one and the CPU recipe's) trained for a few steps, and tiny teachers installed
    (built once per test run; tests copy what they change: training_env)."""
    from tiny_teachers import install_tiny_teachers

    from leafnet.training.registry import find_trainer

    def build(root: Path) -> None:
        with planned_tiny_demo(root, num_cases=40):
            for first_stage in ("LEAFAutoencoderTrainer", "LEAFAutoencoderTrainer_cpu"):
                find_trainer(first_stage)(999, num_steps=20, validate_every=20, num_workers=0,
                                          show_progress=False).run()
            install_tiny_teachers(root)

    return built_once(tmp_path_factory, "training", build)


@pytest.fixture
def training_env(training_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The training demo's folders, with this test's own copy of results and preprocessed
    data."""
    for variable in ("LEAFNET_RAW", "LEAFNET_WEIGHTS"):
        monkeypatch.setenv(variable, str(training_demo / variable.lower()))
    for variable in ("LEAFNET_PREPROCESSED", "LEAFNET_RESULTS"):
        shutil.copytree(training_demo / variable.lower(), tmp_path / variable.lower(),
                        dirs_exist_ok=True)
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    return tmp_path


def train_demo(name: str, steps: int | None, **options):
    """Train ``name`` on dataset 999 for ``steps`` (``every``: validation interval, default
    the steps; ``workers``: loader processes, default 0; ``continue_training``: --c)."""
    from leafnet.training.registry import find_trainer

    resume = options.pop("continue_training", False)
    trainer = find_trainer(name)(999, num_steps=steps, validate_every=options.pop("every", steps),
                                 num_workers=options.pop("workers", 0), show_progress=False,
                                 **options)
    trainer.run(continue_training=resume)
    return trainer


@pytest.fixture(scope="session")
def two_folds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few steps on two folds of the demo (each fold with its own
    first stage; fold 0's first stage long enough to code the masks, for the fast decoder)."""
    from leafnet.training.registry import find_trainer

    def build(root: Path) -> None:
        with planned_tiny_demo(root, num_cases=20):
            splits_path = next((root / "leafnet_preprocessed").glob("Dataset999_*")) \
                / "splits_final.json"
            splits = json.loads(splits_path.read_text())
            first = splits["folds"][0]
            cases = sorted(first["train"] + first["val"])
            second = {"val": cases[:3], "train": cases[3:]}
            splits["folds"] = [first, second]
            splits.pop("generated_by")
            splits_path.write_text(json.dumps(splits))
            for fold in (0, 1):
                find_trainer("LEAFAutoencoderTrainer")(
                    999, fold=fold, num_steps=3 + 150 * (fold == 0), num_workers=0,
                    show_progress=False).run()
                find_trainer("LEAFTrainer_x0")(999, fold=fold, num_steps=3, num_workers=0,
                                               show_progress=False).run()

    return built_once(tmp_path_factory, "model_store", build)


@pytest.fixture
def two_fold_results(two_folds: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This test's own copy of the two-fold model's results folder."""
    shutil.copytree(two_folds / "leafnet_results", tmp_path / "results")
    monkeypatch.setenv("LEAFNET_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEAFNET_PREPROCESSED", str(two_folds / "leafnet_preprocessed"))
    return tmp_path / "results"


def fold_images(folder: Path, count: int = 3) -> Path:
    """``count`` RGB images of several sizes, named as leafnet_predict takes them."""
    for index in range(count):
        save(folder / f"case{index}_0000.png", rgb(48 + 8 * index, 64, index))
    return folder
