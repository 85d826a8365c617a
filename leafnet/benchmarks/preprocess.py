"""Preprocessing speed: the real command with worker processes against a plain loop."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from leafnet.planning import plan_and_preprocess
from leafnet.raw_format import find_dataset


def _timed_run(dataset: str | int, num_processes: int, output_root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    result = plan_and_preprocess(dataset, num_processes, show_progress=False,
                                 output_root=output_root)
    return time.perf_counter() - start, result.processed + result.skipped


def benchmark_preprocess(dataset: str | int, num_processes: int = 2) -> dict[str, Any]:
    """Time the whole command (verify, fingerprint, plans, splits, preprocess) in scratch
    folders: with ``num_processes`` workers; as a plain single-process loop over the same
    cases (``-np 1`` runs every step inline); and a second, up-to-date run of the former."""
    name = find_dataset(dataset).name
    with tempfile.TemporaryDirectory() as scratch:
        parallel_seconds, cases = _timed_run(dataset, num_processes, Path(scratch) / "parallel")
        rerun_seconds, _ = _timed_run(dataset, num_processes, Path(scratch) / "parallel")
        loop_seconds, _ = _timed_run(dataset, 1, Path(scratch) / "loop")
    return {
        "dataset": name,
        "cases": cases,
        "num_processes": num_processes,
        "command_seconds": parallel_seconds,
        "command_cases_per_second": cases / parallel_seconds,
        "plain_loop_seconds": loop_seconds,
        "plain_loop_cases_per_second": cases / loop_seconds,
        "speedup_vs_plain_loop": loop_seconds / parallel_seconds,
        "up_to_date_rerun_seconds": rerun_seconds,
        "up_to_date_rerun_fraction_of_first_run": rerun_seconds / parallel_seconds,
    }
