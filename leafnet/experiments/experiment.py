"""``run_experiment``: train (or reuse) every row of a table, score it on the test split with N
noise seeds, and write the table."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.experiments.report import write_report
from leafnet.experiments.runs import Run, RunSettings, ensure_run
from leafnet.experiments.scoring import all_foreground_reference, evaluate_on_test
from leafnet.experiments.tables import get_table
from leafnet.paths import results_root
from leafnet.training.trainers.base import LEAFTrainer
from leafnet.utilities.machine import machine


def default_output(table: str, trainer: LEAFTrainer) -> Path:
    """``leafnet_results/DatasetXXX/experiments/TABLE__PLANS__PRESET__Nsteps__fold_F``."""
    return (results_root() / trainer.folder.name / "experiments"
            / f"{table}__{trainer.plans_name}__{trainer.preset.name}__{trainer.num_steps}steps"
              f"__fold_{trainer.fold}")


def _training_record(run: Run) -> dict[str, Any]:
    """Steps, time and validation curve of a finished run, from its final checkpoint."""
    state = run.final_state
    history = state["history"]
    seconds = history["step_seconds"]
    return {"steps": int(state["step"]), "train_step_seconds_total": float(np.sum(seconds)),
            "seconds_per_step_median": float(np.median(seconds)) if seconds else None,
            "best_validation_dice": state["best_dice"],
            "validation": {"step": history["val_step"], "dice": history["val_dice"],
                           "iou": history["val_iou"]}}


def _common_fields(trainer: LEAFTrainer) -> dict[str, Any]:
    """What every row of a table shares (taken from its first row's trainer)."""
    return {"dataset": trainer.folder.name, "preset": trainer.preset.name, "fold": trainer.fold,
            "plans": trainer.plans_name, "steps": trainer.num_steps, "device": trainer.device,
            "num_test_cases": len(trainer.split.test),
            "all_foreground_reference": all_foreground_reference(trainer)}


def run_experiment(table_name: str, settings: RunSettings, seeds: int | None = None,
                   output: Path | None = None, checkpoint: str = "best") -> dict[str, Any]:
    """Every row of ``table_name`` trained or reused, scored with seeds 0..N-1 on the test
    split; the table written to ``output``. Returns the JSON that is written."""
    table = get_table(table_name)
    started = time.perf_counter()
    seed_list = list(range(seeds if seeds is not None else table.default_seeds))
    rows: list[dict[str, Any]] = []
    common: dict[str, Any] = {}
    for row in table.rows:
        run_started = time.perf_counter()
        run = ensure_run(row.trainer, settings)
        if not common:
            common = _common_fields(run.trainer)
            output = output or default_output(table.name, run.trainer)
        record: dict[str, Any] = {"labels": row.labels, "trainer": row.trainer,
                                  "status": run.status, "reason": run.reason,
                                  "run_folder": str(run.folder)}
        if run.status != "skipped":
            record.update(_training_record(run))
            record["train_wall_seconds_this_call"] = time.perf_counter() - run_started
            scoring_started = time.perf_counter()
            record["test"] = evaluate_on_test(run.trainer, output / "test" / row.trainer,
                                              seed_list, checkpoint, settings.show_progress)
            record["test_wall_seconds_this_call"] = time.perf_counter() - scoring_started
        rows.append(record)
    result = {
        "table": table.name, "title": table.title, "label_columns": list(table.label_columns),
        **common, "seed": settings.seed, "seeds": seed_list, "checkpoint": checkpoint,
        "note": table.note, "settings": asdict(settings), "machine": machine(), "rows": rows,
        "wall_seconds_this_call": time.perf_counter() - started,
    }
    result["files"] = {k: str(v) for k, v in write_report(output, result).items()}
    return result
