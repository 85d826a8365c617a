"""``run_experiment``: train (or reuse) every row of a table, score it on the test split with N
noise seeds, and write the table."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.benchmarks.report import machine
from leafnet.experiments.report import write_report
from leafnet.experiments.runs import FINAL, Run, RunSettings, ensure_run
from leafnet.experiments.scoring import evaluate_on_test
from leafnet.experiments.tables import get_table
from leafnet.paths import results_root
from leafnet.training.checkpointing import load_checkpoint
from leafnet.training.trainers.base import LEAFTrainer


def default_output(table: str, trainer: LEAFTrainer) -> Path:
    """``leafnet_results/DatasetXXX/experiments/TABLE__PLANS__PRESET__Nsteps__fold_F``."""
    return (results_root() / trainer.folder.name / "experiments"
            / f"{table}__{trainer.plans_name}__{trainer.preset.name}__{trainer.num_steps}steps"
              f"__fold_{trainer.fold}")


def _training_record(run: Run) -> dict[str, Any]:
    """Steps, time and validation curve of a finished run, from its final checkpoint."""
    state = load_checkpoint(run.folder / FINAL)
    history = state["history"]
    seconds = history["step_seconds"]
    return {"steps": int(state["step"]), "train_step_seconds_total": float(np.sum(seconds)),
            "seconds_per_step_median": float(np.median(seconds)) if seconds else None,
            "best_validation_dice": state["best_dice"],
            "validation": {"step": history["val_step"], "dice": history["val_dice"],
                           "iou": history["val_iou"]}}


def run_experiment(table_name: str, settings: RunSettings, seeds: int | None = None,
                   output: Path | None = None, checkpoint: str = "best") -> dict[str, Any]:
    """Every row of ``table_name`` trained or reused, scored with seeds 0..N-1 on the test
    split; the table written to ``output``. Returns the JSON that is written."""
    table = get_table(table_name)
    started = time.perf_counter()
    seed_list = list(range(seeds if seeds is not None else table.default_seeds))
    rows, first = [], None
    for row in table.rows:
        run_started = time.perf_counter()
        run = ensure_run(row.trainer, settings)
        first = first or run.trainer
        output = output or default_output(table.name, first)
        record: dict[str, Any] = {"labels": row.labels, "trainer": row.trainer,
                                  "status": run.status, "reason": run.reason,
                                  "run_folder": str(run.folder)}
        if run.status != "skipped":
            record.update(_training_record(run))
            record["wall_seconds_this_call"] = time.perf_counter() - run_started
            record["test"] = evaluate_on_test(run.trainer, output / "test" / row.trainer,
                                              seed_list, checkpoint, settings.show_progress)
        rows.append(record)
    result = {
        "table": table.name, "title": table.title, "label_columns": list(table.label_columns),
        "dataset": first.folder.name, "preset": first.preset.name, "fold": settings.fold,
        "plans": settings.plans, "steps": first.num_steps, "seed": settings.seed,
        "seeds": seed_list, "checkpoint": checkpoint, "num_test_cases": len(first.split["test"]),
        "note": table.note, "settings": {k: str(v) if isinstance(v, Path) else v
                                         for k, v in asdict(settings).items()},
        "machine": machine(), "device": first.device, "rows": rows,
        "wall_seconds_this_call": time.perf_counter() - started,
    }
    result["files"] = {k: str(v) for k, v in write_report(output, result).items()}
    return result
