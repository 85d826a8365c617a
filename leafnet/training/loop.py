"""The training loop every trainer shares, built from parts: the trainer's task (what is
trained, its losses, validation and export; tasks/), its data (the fold's cases, or the task's
own batches), AdamW with diffusers' LR schedule (lr_schedule.py), EMA weights, DDP under
torchrun, and the target: steps, a ``--minutes`` budget, or the task's goal. Batches and every
random draw of a step are functions of (seed, step), so ``--c`` resumes exactly; the fold
record holds the run's inputs and a continuation with other ones is refused
(models/fold_record.py). A trainer is a subclass that sets class attributes and builds its task
in :meth:`make_task`; trainers are found by class name (registry.py).
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from diffusers.training_utils import EMAModel
from torch.nn.parallel import DistributedDataParallel

from leafnet.errors import LeafnetError
from leafnet.models.fold_record import (
    FOLD_DATASET_FILE,
    FoldInputs,
    FoldRecord,
    Target,
    check_checkpoint_inputs,
    continued_record,
    describe_target,
    model_digest,
    write_fold_inputs,
)
from leafnet.models.presets import get_preset
from leafnet.paths import trainer_output
from leafnet.training.checkpointing import (
    FINAL,
    LATEST,
    load_checkpoint,
    remove_checkpoints,
    rng_state,
    save_final_checkpoint,
    save_interval_checkpoints,
    set_rng_state,
)
from leafnet.training.augmentation import AUGMENTATIONS, full_augmentation
from leafnet.training.data_loading import make_loader
from leafnet.training.distributed import init_distributed, rank0_value, shutdown_distributed
from leafnet.training.fold_data import load_fold
from leafnet.training.progress import LOGGER, interval_summary, plot_progress, training_log
from leafnet.training.lr_schedule import check_targets, lr_scheduler
from leafnet.training.tasks.task import RunContext, TrainingTask
from leafnet.utilities.digests import file_digest
from leafnet.utilities.machine import cpu_has_bf16, describe_precision, usable_device

UNBOUNDED_STEPS = 10**9


class Trainer(ABC):
    """The loop; the class attributes are the loop settings a trainer may change."""

    num_steps = 1000
    warmup_steps = 50
    validate_every = 100
    learning_rate: float | None = None
    lr_schedule = "constant_with_warmup"
    cpu_bf16 = False
    augmentation = "flips"
    weight_decay = 0.01
    grad_clip = 1.0
    ema_decay = 0.999
    flips = True
    num_workers = 2
    validation_batch_size = 4
    batch_size: int | None = None
    found_by_name = True

    def __init__(self, dataset: str | int, fold: int = 0, plans_name: str = "leafnetPlans",
                 preset: str | None = None, device: str | None = None, seed: int = 12345,
                 num_steps: int | None = None, validate_every: int | None = None,
                 num_workers: int | None = None, show_progress: bool = True,
                 minutes: float | None = None, extend: bool = False) -> None:
        self.device = usable_device(device)
        self.context = init_distributed(self.device)
        if self.context.enabled and self.device.startswith("cuda"):
            self.device = f"cuda:{self.context.local_rank}"
        self.name = type(self).__name__
        data = load_fold(dataset, plans_name, fold)
        self.folder, self.plans_path, self.plans = data.folder, data.plans_path, data.plans
        self.split, self.train_cases, self.val_cases = data.split, data.train_cases, data.val_cases
        self.plans_name = plans_name
        self.preset = get_preset(preset or self.plans.preset)
        self.fold, self.seed = fold, seed
        self.cpu_bf16 = self.cpu_bf16 and self.device == "cpu" and cpu_has_bf16()
        if self.augmentation not in AUGMENTATIONS:
            raise LeafnetError(f"{self.name}: augmentation '{self.augmentation}' is not one of "
                               f"{', '.join(AUGMENTATIONS)}")
        check_targets(minutes, num_steps, validate_every, num_workers)
        self.minutes, self.extend = minutes, extend
        if num_steps is not None:
            self.num_steps = num_steps
        elif minutes is not None:
            self.num_steps = UNBOUNDED_STEPS
        if validate_every is not None:
            self.validate_every = validate_every
        if num_workers is not None:
            self.num_workers = num_workers
        self.output = self.output_folder()
        batch = self.batch_size or self.plans.batch_size
        if batch % self.context.world_size:
            raise LeafnetError(f"batch size {batch} does not split over "
                               f"{self.context.world_size} processes")
        self.global_batch = batch
        self.history: dict[str, Any] = {"train_step": [], "losses": {}, "lr": [],
                                        "step_seconds": [],
                                        "val_step": [], "val_dice": [], "val_iou": []}
        self.best_dice = -1.0
        self.task = self.make_task(RunContext(
            dataset_folder=self.folder, plans_name=plans_name, plans=self.plans,
            preset=self.preset, fold=fold, seed=seed, device=self.device, output=self.output,
            split=self.split, train_cases=self.train_cases, val_cases=self.val_cases,
            distributed=self.context, global_batch=batch,
            validation_batch_size=self.validation_batch_size, show_progress=show_progress,
            log=self.log, cpu_bf16=self.cpu_bf16))

    @abstractmethod
    def make_task(self, run: RunContext) -> TrainingTask:
        """The task this trainer trains, configured from its class attributes."""

    def output_folder(self) -> Path:
        """The run's folder: ``DatasetXXX_Name/TRAINER__PLANS__PRESET/fold_N``."""
        return trainer_output(self.folder.name, self.name, self.plans_name, self.preset.name,
                              self.fold)

    # -- set-up ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        torch.manual_seed(self.seed)
        self.parameters = self.task.build()
        self.ema_parameters = self.task.ema_parameters()
        self.ema = EMAModel(self.ema_parameters, decay=self.ema_decay)
        learning_rate = self.learning_rate or self.preset.learning_rate
        self.optimizer = torch.optim.AdamW(self.parameters, lr=learning_rate,
                                           weight_decay=self.weight_decay)
        self.budget_spent = 0.0
        self.scheduler = lr_scheduler(self.lr_schedule, self.optimizer, self.warmup_steps,
                                      None if self.minutes is None else self._progress,
                                      self.num_steps)
        module = self.task.trained_module()
        if self.context.enabled:
            module = DistributedDataParallel(
                module, device_ids=[self.context.local_rank] if self.device.startswith("cuda")
                else None)
        self.module = module

    def _progress(self, step: int) -> float:
        """How far the run is at ``step``: the spent fraction of the budget, or of the steps
        when they are bounded and further."""
        steps = 0.0 if self.num_steps == UNBOUNDED_STEPS else step / self.num_steps
        return max(self.budget_spent, steps)

    def fold_inputs(self) -> FoldInputs:
        """What makes this run's weights what they are: compared by ``--c`` and by a resumed
        checkpoint (models/fold_record.py)."""
        teacher, teacher_digest = self.task.teacher_identity()
        return FoldInputs(
            trainer=self.name, dataset=self.folder.name, plans=self.plans_name,
            plans_sha256=file_digest(self.plans_path), preset=self.preset.name, fold=self.fold,
            seed=self.seed, split_sha256=self.split.digest(),
            first_stage=self.task.first_stage_identity(), teacher=teacher,
            teacher_sha256=teacher_digest, task=self.task.settings())

    def target(self) -> Target:
        """The steps and minutes this run trains to."""
        return Target(None if self.num_steps == UNBOUNDED_STEPS else self.num_steps,
                      self.minutes)

    def log(self, message: str) -> None:
        """A line in the training log (rank 0 only)."""
        if self.context.is_main:
            LOGGER.info(message)

    def _log_file(self) -> contextlib.AbstractContextManager:
        if not self.context.is_main:
            return contextlib.nullcontext()
        return training_log(self.output / "training_log.txt")

    def _with_ema(self, function):
        self.ema.store(self.ema_parameters)
        self.ema.copy_to(self.ema_parameters)
        try:
            return function()
        finally:
            self.ema.restore(self.ema_parameters)

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_state(self, step: int) -> dict[str, Any]:
        return {
            "trainer": self.name, "fold_inputs": self.fold_record.to_json()["inputs"],
            "step": step, **self.task.model_state(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "history": self.history, "best_dice": self.best_dice, "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any], name: str) -> int:
        """Load checkpoint ``name``'s ``state``; refused when another run wrote it (a copied
        checkpoint; checkpoints of an older leafnet record only their trainer)."""
        if state["trainer"] != self.name:
            raise LeafnetError(f"{name} belongs to {state['trainer']}, not {self.name}")
        check_checkpoint_inputs(self.output / name, state.get("fold_inputs"),
                                self.fold_record.inputs)
        self.task.load_model_state(state)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.best_dice = state["history"], state["best_dice"]
        set_rng_state(state["rng"])
        return int(state["step"])

    def validate_checkpoint(self, name: str = FINAL) -> dict[str, float]:
        """``--val``: validation metrics of a saved checkpoint's EMA weights."""
        self.output.mkdir(parents=True, exist_ok=True)
        self.fold_record = FoldRecord(self.fold_inputs(), self.target())
        self._prepare()
        self.restore(load_checkpoint(self.output / name), name)
        with self._log_file():
            metrics = self._with_ema(self.task.validate)
            self.log(f"validation of {name}: {metrics}")
        return metrics

    # -- the loop ---------------------------------------------------------------------------
    def run(self, continue_training: bool = False, save: bool = True) -> Path:
        """Train to ``num_steps`` (resuming from checkpoint_latest with ``continue_training``).
        The output folder is created only once everything training needs is there. ``save``
        False writes no checkpoints or models: timing runs (the paper preset's checkpoint is
        1.8 GB) need only the log."""
        self.save = save
        note = ""
        self.fold_record = FoldRecord(self.fold_inputs(), self.target())
        if continue_training and (self.output / LATEST).is_file():
            self.fold_record, note = continued_record(self.output, self.fold_record,
                                                      self.extend, self.split)
        self._prepare()
        self.output.mkdir(parents=True, exist_ok=True)
        with self._log_file():
            if note:
                self.log(note)
            self._run(continue_training)
        self.context.barrier()
        shutdown_distributed(self.context)
        return self.output

    def _save_record(self, **changes: Any) -> None:
        """Update the fold record (progress, exported models) and write it (rank 0, saving)."""
        for name, value in changes.items():
            setattr(self.fold_record, name, value)
        if self.context.is_main and self.save:
            self.fold_record.save(self.output)

    def _export(self, checkpoint: str) -> None:
        """Export the EMA weights as ``checkpoint``'s model and record its digest."""
        folder = self._with_ema(lambda: self.task.export(checkpoint))
        if folder is not None:
            self._save_record(models={**self.fold_record.models,
                                      checkpoint: model_digest(folder)})

    def _run(self, continue_training: bool) -> None:
        start = 0
        latest = self.output / LATEST
        if continue_training and latest.is_file():
            start = self.restore(load_checkpoint(latest), latest.name)
            self.budget_spent = self._spent_fraction()
            self._save_record()
            self.log(f"resumed from {latest} at step {start}")
        elif self.context.is_main:
            if self.save and (removed := remove_checkpoints(self.output, continue_training)):
                self.log(removed)
            write_fold_inputs(self.output, self.plans_path, self.folder / FOLD_DATASET_FILE,
                              self.split)
            self._save_record()
            self.log(f"{self.name} on {self.folder.name} fold {self.fold}, preset "
                     f"{self.preset.name}, {len(self.train_cases)} train / "
                     f"{len(self.val_cases)} val cases, device {self.device}, "
                     f"{self.context.world_size} process(es), {describe_target(self.target())},"
                     f" {describe_precision(self.device, self.cpu_bf16, type(self).cpu_bf16)}")
        for note in self.task.start_notes():
            self.log(note)
        if start and self.budget_spent >= 1:
            self.num_steps = start
            self.log(f"the {self.minutes:g} minute budget was already spent")
        started = time.perf_counter()
        before = self.history.get("train_seconds", 0.0)
        if start < self.num_steps and self._goal_reached(start):
            self.num_steps = start
            self.log(f"{self.name}: the goal is met at step {start}; no more training needed")
        transform = (full_augmentation(self.plans.target_size)
                     if self.augmentation == "full" else None)
        loader = None
        if start < self.num_steps:
            loader = self.task.batches(start) or make_loader(
                self.train_cases, self.global_batch, self.seed, start, self.flips,
                self.num_workers, transform)
        try:
            for step in range(start, self.num_steps):
                step_started = time.perf_counter()
                batch = next(loader)
                if batch["step"] != step:
                    raise RuntimeError(f"data loader out of order: {batch['step']} != {step}")
                self.optimizer.zero_grad(set_to_none=True)
                losses = self.task.compute_losses(self.module, batch, step)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
                self.optimizer.step()
                self.history["train_seconds"] = before + time.perf_counter() - started
                self.budget_spent = self._spent_fraction()
                self.scheduler.step()
                self.ema.step(self.ema_parameters)
                self._record(step, losses, time.perf_counter() - step_started)
                done = step + 1
                out_of_time = self.budget_spent >= 1
                if out_of_time:
                    self.num_steps = done
                    self.log(f"the {self.minutes:g} minute budget is spent after {done} steps")
                elif self._goal_reached(done):
                    out_of_time, self.num_steps = True, done
                    self.log(f"goal reached after {done} steps")
                if done % self.validate_every == 0 or done == self.num_steps:
                    recent = bool(self.history["val_step"]) and (
                        done - self.history["val_step"][-1] < self.validate_every // 2)
                    self._end_of_interval(done, time.perf_counter() - started,
                                          validate=not (out_of_time and recent))
                if out_of_time:
                    break
        finally:
            if loader is not None and hasattr(loader, "_finish"):
                loader._finish()
        self.history["train_seconds"] = before + time.perf_counter() - started
        finished = start == self.num_steps == self.fold_record.steps_done and "final" in \
            self.fold_record.models and (self.output / FINAL).is_file()
        if finished:
            self.log(f"the run had already finished at step {start}: nothing to do")
        elif self.context.is_main and self.save:
            final = save_final_checkpoint(self.output, self.checkpoint_state(self.num_steps))
            self._save_record(steps_done=self.num_steps,
                              train_seconds=self.history["train_seconds"])
            self._export("final")
            self.task.after_training()
            self.log(f"done: {final}")

    def _goal_reached(self, done: int) -> bool:
        """The task's goal, judged on the EMA weights by rank 0 (every process stops at the
        same step)."""
        if not self.task.goal_due(done):
            return False
        reached = self._with_ema(lambda: self.task.goal_reached(done)) \
            if self.context.is_main else False
        return bool(rank0_value(self.context, float(reached), self.device))

    def _spent_fraction(self) -> float:
        """The spent fraction of the ``--minutes`` budget (training time over all sittings; 0
        without one); every process follows rank 0's clock, so DDP processes keep the same LR
        and stop at the same step."""
        if self.minutes is None:
            return 0.0
        spent = self.history.get("train_seconds", 0.0) / (self.minutes * 60)
        return float(rank0_value(self.context, spent, self.device))

    def _record(self, step: int, losses: dict[str, torch.Tensor], seconds: float) -> None:
        self.history["train_step"].append(step)
        self.history["step_seconds"].append(seconds)
        for name, value in losses.items():
            self.history["losses"].setdefault(name, []).append(float(value.detach()))
        self.history["lr"].append(self.scheduler.get_last_lr()[0])

    def _end_of_interval(self, done: int, seconds: float, validate: bool = True) -> None:
        """Validate (unless a budget stop comes right after a validation: its cost would
        overrun the budget for nothing new), log, checkpoint, plot."""
        if self.context.is_main:
            metrics = self._with_ema(self.task.validate) if validate else {}
            if metrics:
                self.history["val_step"].append(done)
                self.history["val_dice"].append(metrics["dice"])
                self.history["val_iou"].append(metrics.get("iou", math.nan))
            text = interval_summary(self.history, self.validate_every, metrics)
            self.log(f"step {done} of {describe_target(self.target())} ({seconds:.0f} s): {text}")
        if self.context.is_main and self.save:
            state = self.checkpoint_state(done)
            improved = bool(metrics) and metrics["dice"] > self.best_dice
            if improved:
                self.best_dice = state["best_dice"] = metrics["dice"]
            save_interval_checkpoints(self.output, state, improved)
            if improved:
                self._export("best")
            self._save_record(steps_done=done, train_seconds=self.history["train_seconds"])
            plot_progress(self.output / "progress.png", self.history, done == self.num_steps)
        self.context.barrier()
