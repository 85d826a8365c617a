"""Writing a raw dataset safely: into a temporary folder, verified, then renamed into place.

Every converter describes its cases as :class:`CaseTask` objects and hands them to
:func:`write_dataset`, which owns the rules that must hold for all of them: no overwrite without
``overwrite=True``, progress over worker processes, the mandatory integrity check, and nothing
half-written left under the final name.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from leafnet.errors import LeafnetError
from leafnet.paths import raw_root
from leafnet.raw_format import (
    DatasetDescription,
    dataset_folder_name,
    list_datasets,
    write_dataset_json,
)
from leafnet.utilities.parallel import parallel_map
from leafnet.utilities.processes import folder_lock, process_alive
from leafnet.verification import VerificationReport, assert_dataset_ok
from leafnet.verification.integrity import DatasetIntegrityError

_TEMPORARY_PREFIX = ".tmp-convert-"


class CaseTask(Protocol):
    """One case to write: ``write`` creates the image file and, if the case has one, the label."""

    case_id: str
    subset: str

    @property
    def has_label(self) -> bool: ...

    def write(self, image_path: Path, label_path: Path | None) -> None: ...


class _TaskRunner:
    """Picklable worker that writes one task into the temporary dataset folder."""

    def __init__(self, folder: Path, description: DatasetDescription) -> None:
        self.folder = folder
        self.description = description

    def __call__(self, task: CaseTask) -> str:
        d = self.description
        image = self.folder / f"images{task.subset}" / f"{task.case_id}_0000{d.image_ending}"
        label = self.folder / f"labels{task.subset}" / f"{task.case_id}{d.file_ending}"
        try:
            task.write(image, label if task.has_label else None)
        except LeafnetError as error:
            raise LeafnetError(f"case {task.case_id}: {error}") from None
        return task.case_id


def _remove_stale_temporaries(root: Path) -> None:
    """Delete temporary folders left by conversions whose process no longer runs."""
    for folder in root.glob(f"{_TEMPORARY_PREFIX}*"):
        pid = folder.name.removeprefix(_TEMPORARY_PREFIX)
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _check_task_ids(tasks: Sequence[CaseTask]) -> None:
    duplicates = sorted(case for case, n in Counter(t.case_id for t in tasks).items() if n > 1)
    if duplicates:
        examples = "; ".join(
            f"{case}: " + ", ".join(str(getattr(t, "image", t.case_id)) for t in tasks
                                    if t.case_id == case) for case in duplicates[:3])
        raise LeafnetError(
            f"{len(duplicates)} case ids occur more than once in the source ({examples}); "
            "two files with the same name in different formats or folders, or names that "
            "differ only in characters leafnet replaces by '_'. Rename or remove one of each"
        )
    if not tasks:
        raise LeafnetError("the source holds no cases to convert")


def write_dataset(
    dataset_id: int,
    description: DatasetDescription,
    tasks: Sequence[CaseTask],
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
) -> tuple[Path, VerificationReport]:
    """Write ``tasks`` as raw dataset ``DatasetXXX_<description.name>`` and verify it.

    ``numTraining`` and ``numTest`` are filled in from the tasks. An existing dataset with the
    same id is an error unless ``overwrite``; it is replaced only once the new one has passed
    the integrity check.
    """
    root = raw_root()
    final = root / dataset_folder_name(dataset_id, description.name)
    with folder_lock(root, f"converting dataset {dataset_id:03d}",
                     name=f".Dataset{dataset_id:03d}.lock"):
        return _write_locked(root, final, dataset_id, description, tasks, overwrite,
                             num_processes, show_progress)


def _write_locked(root: Path, final: Path, dataset_id: int, description: DatasetDescription,
                  tasks: Sequence[CaseTask], overwrite: bool, num_processes: int | None,
                  show_progress: bool) -> tuple[Path, VerificationReport]:
    """:func:`write_dataset` while this process holds the dataset id's lock."""
    existing = list_datasets(root).get(dataset_id, [])
    if existing and not overwrite:
        raise LeafnetError(
            f"{existing[0]} already exists; pass --overwrite to replace it, or choose another "
            "id with -d"
        )
    _check_task_ids(tasks)
    counts = Counter(task.subset for task in tasks)
    description = replace(
        description,
        num_training=counts["Tr"],
        num_test=counts["Ts"] if counts["Ts"] else None,
    )
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    staging = root / f"{_TEMPORARY_PREFIX}{os.getpid()}"
    temporary = staging / final.name
    try:
        for subset in counts:
            (temporary / f"images{subset}").mkdir(parents=True, exist_ok=True)
            if any(t.has_label for t in tasks if t.subset == subset):
                (temporary / f"labels{subset}").mkdir(parents=True, exist_ok=True)
        write_dataset_json(temporary, description)
        parallel_map(_TaskRunner(temporary, description), tasks, num_processes,
                     f"writing {final.name}", show_progress)
        try:
            report = assert_dataset_ok(temporary, num_processes, show_progress)
        except DatasetIntegrityError as error:
            # The temporary folder is deleted below: name the dataset that was not written.
            raise LeafnetError(
                str(error).replace(f"({temporary})", f"(as converted; nothing was written to "
                                   f"{final})")) from None
        for index, old in enumerate(existing):
            os.replace(old, staging / f"replaced-{index}")
        os.replace(temporary, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, replace(report, dataset_folder=final)
