"""A public dataset as leafnet knows it: its default id, its layouts, and how to find its cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from leafnet.dataset_conversion.file_cases import FileCase
from leafnet.dataset_conversion.source_layout import require_source
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.raw_format import DatasetDescription
from leafnet.verification import VerificationReport

Collector = Callable[[Path], tuple[list[FileCase], DatasetDescription]]


@dataclass(frozen=True)
class PublicSource:
    """``collect`` turns a download into cases and a dataset.json; ``convert`` writes them."""

    title: str
    default_id: int
    layout: str
    collect: Collector

    def convert(
        self,
        source: Path,
        dataset_id: int | None = None,
        overwrite: bool = False,
        num_processes: int | None = None,
        show_progress: bool = True,
    ) -> tuple[Path, VerificationReport]:
        """Convert the download in ``source`` into ``DatasetXXX_Name`` (id ``default_id``)."""
        tasks, description = self.collect(require_source(source))
        dataset_id = self.default_id if dataset_id is None else dataset_id
        return write_dataset(dataset_id, description, tasks, overwrite, num_processes,
                             show_progress)
