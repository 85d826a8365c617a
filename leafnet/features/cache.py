"""The teacher feature cache.

Under ``leafnet_preprocessed/DatasetXXX_Name/features/<teacher>_<grid>x<grid>/`` it keeps, for
every training case of the plans' preprocessed data and for each of the four flip states the
trainer can produce (none, horizontal, vertical, both), the teacher's patch tokens in float16,
as ``view_<v><h>.npy`` arrays of shape ``(cases, tokens, dim)`` plus ``index.json``. The content
key hashes the teacher's weights, the plans' preprocessing and every case's properties, so a
changed teacher, plan or image rebuilds the cache; an unchanged one is reused by every run and
fold without loading the teacher at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from leafnet.atomic import atomic_path, write_json
from leafnet.models.teacher_specs import teacher_spec
from leafnet.models.teachers import Teacher
from leafnet.models.weights.store import entry_folder, require
from leafnet.preprocessing.preprocessed_data import PreprocessedCases, apply_flip
from leafnet.utilities.digests import file_digest

FLIP_STATES = ((False, False), (False, True), (True, False), (True, True))


def _view_name(flip: tuple[bool, bool]) -> str:
    return f"view_{int(flip[0])}{int(flip[1])}.npy"


def teacher_signature(teacher_name: str) -> str:
    """A digest of the installed teacher: its weights file's bytes and its provenance (what
    the feature cache and a run's fold record key on)."""
    name = teacher_spec(teacher_name).entry
    weights = require(name, "teacher.safetensors")
    source = entry_folder(name) / "source.json"
    provenance = source.read_text() if source.is_file() else ""
    return hashlib.sha256(f"{name}:{file_digest(weights)}:{provenance}".encode()).hexdigest()[:16]


def cache_key(teacher_name: str, grid: int, cases: PreprocessedCases) -> str:
    digest = hashlib.sha256(f"{teacher_signature(teacher_name)}:{grid}".encode())
    for case_id in cases.case_ids:
        digest.update((cases.folder / f"{case_id}.json").read_bytes())
    return digest.hexdigest()[:16]


class FeatureCache:
    """Cached tokens for a fixed list of cases; ``tokens(indices, flips)`` looks them up."""

    def __init__(self, folder: Path) -> None:
        index = json.loads((folder / "index.json").read_text())
        self.folder = folder
        self.case_ids: list[str] = index["case_ids"]
        self.views = {tuple(state): np.load(folder / _view_name(tuple(state)), mmap_mode="r")
                      for state in FLIP_STATES}

    def tokens(self, case_indices: np.ndarray, flips: np.ndarray) -> torch.Tensor:
        """Float32 tokens ``(B, L, D)`` of exactly the views the U-Net sees."""
        rows = [self.views[(bool(f[0]), bool(f[1]))][int(i)] for i, f in
                zip(case_indices, flips, strict=True)]
        return torch.from_numpy(np.stack(rows).astype(np.float32))


def cache_folder(preprocessed_dataset: Path, teacher_name: str, grid: int) -> Path:
    name = teacher_spec(teacher_name).entry
    return preprocessed_dataset / "features" / f"{name}_{grid}x{grid}"


def load_or_build_cache(preprocessed_dataset: Path, teacher_name: str, grid: int,
                        cases: PreprocessedCases, load_teacher: Callable[[], Teacher],
                        device: str | torch.device = "cpu", batch_size: int = 8,
                        show_progress: bool = True) -> FeatureCache:
    """The cache for ``cases``, built first (with ``load_teacher()``) when missing or stale."""
    folder = cache_folder(preprocessed_dataset, teacher_name, grid)
    key = cache_key(teacher_name, grid, cases)
    index_path = folder / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if index.get("key") == key and index.get("case_ids") == cases.case_ids:
            return FeatureCache(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    teacher = load_teacher().to(device)
    total = len(cases) * len(FLIP_STATES)
    with tqdm(total=total, desc=f"teacher features ({teacher.name})",
              disable=not show_progress, leave=False) as bar:
        for state in FLIP_STATES:
            view = np.zeros((len(cases), teacher.num_tokens, teacher.dim), dtype=np.float16)
            for start in range(0, len(cases), batch_size):
                indices = range(start, min(start + batch_size, len(cases)))
                images = np.stack([apply_flip(cases.image_and_mask(i)[0], np.array(state))
                                   for i in indices])
                tokens = teacher(torch.from_numpy(images).to(device))
                view[start:start + len(indices)] = tokens.float().cpu().numpy()
                bar.update(len(indices))
            with atomic_path(folder / _view_name(state)) as temporary:
                np.save(temporary, view)
    write_json(index_path, {"key": key, "teacher": teacher.name, "grid": grid,
                            "case_ids": cases.case_ids, "dim": teacher.dim})
    return FeatureCache(folder)
