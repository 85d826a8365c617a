"""Seconds per training step: _x0 against _x0_distill with cached and with online teacher.

Runs in scratch copies of the preprocessed data and results, so nothing of the user's is
touched. Teachers that are not installed are replaced by randomly initialised ones of the real
architecture (the timing does not depend on the weights) in a scratch weights folder that links
the installed entries (the paper preset's LDM); the report says which were used.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from leafnet.benchmarks.scratch_environment import environment
from leafnet.models.presets import get_preset
from leafnet.models.teachers import build_teacher_model, save_teacher
from leafnet.models.teacher_specs import DEFAULT_TEACHER, TEACHER_SPECS
from leafnet.models.weights.store import installed
from leafnet.training.locate import preprocessed_dataset
from leafnet.training.registry import find_trainer

TRAINERS = ("LEAFTrainer_x0", "LEAFTrainer_x0_distill", "LEAFTrainer_x0_distill_online",
            "LEAFTrainer_x0_cpu")


def benchmark_train_step(dataset: str | int, preset: str, steps: int = 6,
                         device: str = "cpu") -> dict[str, Any]:
    """Median seconds per step (after one warm-up step) of each trainer in TRAINERS."""
    source = preprocessed_dataset(dataset)
    teacher = TEACHER_SPECS[DEFAULT_TEACHER]
    random_teacher = installed()[teacher.entry] is None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        shutil.copytree(source, scratch / "preprocessed" / source.name,
                        ignore=shutil.ignore_patterns("features"))
        variables = {"LEAFNET_PREPROCESSED": str(scratch / "preprocessed"),
                       "LEAFNET_RESULTS": str(scratch / "results")}
        if random_teacher:
            for name, folder in installed().items():
                if folder is not None:
                    (scratch / "weights").mkdir(exist_ok=True)
                    (scratch / "weights" / name).symlink_to(folder, target_is_directory=True)
            torch.manual_seed(0)
            config = teacher.architecture
            model, _ = build_teacher_model(config, config["native_grid"])
            save_teacher(scratch / "weights" / teacher.entry, config, model)
            (scratch / "weights" / teacher.entry / "source.json").write_text("{}")
            variables["LEAFNET_WEIGHTS"] = str(scratch / "weights")
        with environment(**variables):
            if get_preset(preset).pretrained is None:
                for first_stage in sorted({find_trainer(name).first_stage for name in TRAINERS}):
                    find_trainer(first_stage)(dataset, preset=preset, device=device,
                                              num_steps=1, show_progress=False).run()
            for name in TRAINERS:
                trainer = find_trainer(name)(dataset, preset=preset, device=device,
                                             num_steps=steps + 1, validate_every=10**9,
                                             show_progress=False)
                trainer.val_cases.case_ids = []
                trainer.run(save=False)
                results[name] = statistics.median(trainer.history["step_seconds"][1:])
    base = results["LEAFTrainer_x0"]
    return {
        "dataset": source.name, "preset": preset, "device": device, "steps_timed": steps,
        "batch_size": trainer.global_batch, "teacher_weights": "random (timing only)"
        if random_teacher else "installed",
        "seconds_per_step": results,
        "distill_cache_overhead": results["LEAFTrainer_x0_distill"] / base - 1,
        "distill_online_overhead": results["LEAFTrainer_x0_distill_online"] / base - 1,
        "cpu_recipe_vs_paper_recipe": results["LEAFTrainer_x0_cpu"] / base,
    }
