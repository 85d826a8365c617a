"""The training loop every trainer shares; what it trains is the trainer's task.

AdamW, linear warm-up then diffusers' LR schedule (constant, cosine or linear decay over the
steps, or, with a ``--minutes`` budget, over the spent fraction of the budget), gradient
clipping, EMA weights (validated, checkpointed and exported), DistributedDataParallel when
started by torchrun, validation and checkpoints every ``validate_every`` steps, checkpoint_best
by validation Dice, the training log and progress.png. Batches are a function of (seed, step)
(data_loading.py) and so is every random draw of a task's step, so ``--c`` resumes exactly; the
run's settings are recorded and a continuation with other ones is refused (run_identity.py).

A trainer is a subclass that sets class attributes and builds its task in :meth:`make_task`;
trainers are found by class name (registry.py).
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.nn.parallel import DistributedDataParallel

from leafnet.atomic import copy_file, write_json
from leafnet.errors import LeafnetError
from leafnet.models.presets import get_preset
from leafnet.paths import trainer_output
from leafnet.planning.plans import plans_file
from leafnet.preprocessing.plans import Plans
from leafnet.training.checkpointing import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from leafnet.training.augmentation import AUGMENTATIONS, full_augmentation
from leafnet.training.data_loading import PreprocessedCases, make_loader
from leafnet.training.distributed import (
    init_distributed,
    rank0_value,
    shutdown_distributed,
)
from leafnet.training.locate import preprocessed_dataset
from leafnet.training.fold_data import PREPROCESS_FIX, check_preprocessed, fold_split
from leafnet.training.progress import LOGGER, plot_progress, training_log
from leafnet.training.lr_schedule import budget_schedule
from leafnet.training.run_identity import check_continuation, record_run_settings
from leafnet.training.tasks.task import RunContext, TrainingTask
from leafnet.utilities.digests import file_digest
from leafnet.utilities.machine import cpu_has_bf16, default_device

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

    def __init__(self, dataset: str | int, fold: int = 0, plans_name: str = "leafnetPlans",
                 preset: str | None = None, device: str | None = None, seed: int = 12345,
                 num_steps: int | None = None, validate_every: int | None = None,
                 num_workers: int | None = None, show_progress: bool = True,
                 minutes: float | None = None, extend: bool = False) -> None:
        self.device = device or default_device()
        self.context = init_distributed(self.device)
        if self.context.enabled and self.device.startswith("cuda"):
            self.device = f"cuda:{self.context.local_rank}"
        self.name = type(self).__name__
        self.folder = preprocessed_dataset(dataset)
        self.plans_name = plans_name
        self.plans_path = self.folder / plans_file(plans_name)
        self.plans = Plans.load(self.plans_path, PREPROCESS_FIX)
        self.preset = get_preset(preset or self.plans.preset)
        self.fold, self.seed = fold, seed
        self.cpu_bf16 = self.cpu_bf16 and self.device == "cpu" and cpu_has_bf16()
        if self.augmentation not in AUGMENTATIONS:
            raise LeafnetError(f"{self.name}: augmentation '{self.augmentation}' is not one of "
                               f"{', '.join(AUGMENTATIONS)}")
        if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
            raise LeafnetError(f"--minutes must be a positive number, got {minutes}")
        for flag, value in (("--steps", num_steps), ("--validate-every", validate_every)):
            if value is not None and value < 1:
                raise LeafnetError(f"{flag} must be at least 1, got {value}: a run without steps "
                                   "would save untrained weights over the trained ones")
        if num_workers is not None and num_workers < 0:
            raise LeafnetError(f"--workers must be 0 or more, got {num_workers}")
        self.minutes, self.extend = minutes, extend
        if num_steps is not None:
            self.num_steps = num_steps
        elif minutes is not None:
            self.num_steps = UNBOUNDED_STEPS
        if validate_every is not None:
            self.validate_every = validate_every
        if num_workers is not None:
            self.num_workers = num_workers
        self.split = fold_split(self.folder, self.plans, fold)
        self.output = trainer_output(self.folder.name, self.name, plans_name, self.preset.name,
                                     fold)
        data = self.folder / self.plans.data_identifier
        check_preprocessed(self.folder, data, self.plans, self.split, fold)
        scheme = self.plans.label_scheme
        self.train_cases = PreprocessedCases(data, self.split["train"], scheme)
        self.val_cases = PreprocessedCases(data, self.split["val"], scheme)
        batch = self.plans.batch_size
        if batch % self.context.world_size:
            raise LeafnetError(f"batch size {batch} (plans) does not split over "
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
        self.scheduler = self._lr_scheduler()
        module = self.task.trained_module()
        if self.context.enabled:
            module = DistributedDataParallel(
                module, device_ids=[self.context.local_rank] if self.device.startswith("cuda")
                else None)
        self.module = module

    def _lr_scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        """diffusers' schedule ``lr_schedule`` (warm-up, then constant, cosine or linear decay;
        a cosine is one half period, down to zero at the end) over ``num_steps``; with
        ``--minutes``, the decay follows the spent fraction of the budget (or of the steps,
        whichever is further), so the LR falls smoothly to the end of the budget."""
        if self.minutes is None:
            return get_scheduler(self.lr_schedule, self.optimizer,
                                 num_warmup_steps=self.warmup_steps,
                                 num_training_steps=self.num_steps, num_cycles=0.5)
        return budget_schedule(self.lr_schedule, self.optimizer, self.warmup_steps,
                               self._progress)

    def _progress(self, step: int) -> float:
        """How far the run is at ``step``: the spent fraction of the budget, or of the steps
        when they are bounded and further."""
        steps = 0.0 if self.num_steps == UNBOUNDED_STEPS else step / self.num_steps
        return max(self.budget_spent, steps)

    def run_settings(self) -> dict[str, Any]:
        """What makes this run's weights what they are: compared by ``--c`` (run_identity.py)."""
        return {"trainer": self.name, "fold": self.fold, "plans": self.plans_name,
                "plans_sha256": file_digest(self.plans_path), "preset": self.preset.name,
                "seed": self.seed,
                "steps": None if self.num_steps == UNBOUNDED_STEPS else self.num_steps,
                "minutes": self.minutes, **self.task.settings()}

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
            "trainer": self.name, "plans_name": self.plans_name, "preset": self.preset.name,
            "fold": self.fold, "seed": self.seed, "step": step, **self.task.model_state(),
            "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "best_dice": self.best_dice, **self.task.settings(), "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> int:
        if state["trainer"] != self.name:
            raise LeafnetError(f"checkpoint_latest.pth belongs to {state['trainer']}, not "
                               f"{self.name}")
        self.task.load_model_state(state)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.best_dice = state["history"], state["best_dice"]
        set_rng_state(state["rng"])
        return int(state["step"])

    def validate_checkpoint(self, name: str = "checkpoint_final.pth") -> dict[str, float]:
        """``--val``: validation metrics of a saved checkpoint's EMA weights."""
        self.output.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self.restore(load_checkpoint(self.output / name))
        with self._log_file():
            metrics = self._with_ema(self.task.validate)
            self.log(f"validation of {name}: {metrics}")
        return metrics

    # -- the loop ---------------------------------------------------------------------------
    def _copy_inputs(self) -> None:
        for source, name in ((self.plans_path, "plans.json"),
                             (self.folder / "dataset.json", "dataset.json")):
            copy_file(source, self.output / name)
        write_json(self.output / "split.json", self.split)

    def run(self, continue_training: bool = False, save: bool = True) -> Path:
        """Train to ``num_steps`` (resuming from checkpoint_latest with ``continue_training``).
        The output folder is created only once everything training needs is there. ``save``
        False writes no checkpoints or models: timing runs (the paper preset's checkpoint is
        1.8 GB) need only the log."""
        self.save = save
        note = ""
        if continue_training and (self.output / "checkpoint_latest.pth").is_file():
            note = check_continuation(self.output, self.run_settings(), self.extend,
                                      write=self.context.is_main and save)
        settings = self.run_settings()
        self._prepare()
        self.output.mkdir(parents=True, exist_ok=True)
        with self._log_file():
            if note:
                self.log(note)
            self._run(continue_training, settings)
        self.context.barrier()
        shutdown_distributed(self.context)
        return self.output

    def _run(self, continue_training: bool, settings: dict[str, Any]) -> None:
        start = 0
        latest = self.output / "checkpoint_latest.pth"
        if continue_training and latest.is_file():
            start = self.restore(load_checkpoint(latest))
            self.budget_spent = self._spent_fraction()
            self.log(f"resumed from {latest} at step {start}")
        elif self.context.is_main:
            self._copy_inputs()
            if self.save:
                record_run_settings(self.output, settings)
            self.log(f"{self.name} on {self.folder.name} fold {self.fold}, preset "
                     f"{self.preset.name}, {len(self.train_cases)} train / "
                     f"{len(self.val_cases)} val cases, device {self.device}, "
                     f"{self.context.world_size} process(es), {self._target()}, "
                     f"{self._precision()}")
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
        loader = make_loader(self.train_cases, self.global_batch, self.seed, start, self.flips,
                             self.num_workers, transform) if start < self.num_steps else None
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
        if self.context.is_main and self.save:
            final = self.output / "checkpoint_final.pth"
            save_checkpoint(final, self.checkpoint_state(self.num_steps))
            self._with_ema(lambda: self.task.export("final"))
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

    def _precision(self) -> str:
        if self.device.startswith("cuda") or self.cpu_bf16:
            return "bf16 autocast"
        if type(self).cpu_bf16 and self.device == "cpu":
            return "float32 (the trainer asks for bf16, which this CPU lacks natively)"
        return "float32"

    def _target(self) -> str:
        steps = "" if self.num_steps == UNBOUNDED_STEPS else f"{self.num_steps} steps"
        budget = "" if self.minutes is None else f"{self.minutes:g} minutes"
        return " or ".join(part for part in (steps, budget) if part)

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
            recent = {k: float(np.mean(v[-self.validate_every:]))
                      for k, v in self.history["losses"].items()}
            text = ", ".join(f"{k} {v:.4f}" for k, v in recent.items())
            seconds_per_step = np.median(self.history["step_seconds"][-self.validate_every:])
            text += f", {seconds_per_step:.2f} s/step"
            if metrics:
                self.history["val_step"].append(done)
                self.history["val_dice"].append(metrics["dice"])
                self.history["val_iou"].append(metrics["iou"])
                text += f", val Dice {metrics['dice']:.4f}, IoU {metrics['iou']:.4f}"
            self.log(f"step {done} of {self._target()} ({seconds:.0f} s): {text}")
        if self.context.is_main and self.save:
            state = self.checkpoint_state(done)
            if metrics and metrics["dice"] > self.best_dice:
                self.best_dice = metrics["dice"]
                state["best_dice"] = self.best_dice
                save_checkpoint(self.output / "checkpoint_best.pth", state)
                self._with_ema(lambda: self.task.export("best"))
            save_checkpoint(self.output / "checkpoint_latest.pth", state)
            plot_progress(self.output / "progress.png", self.history)
        self.context.barrier()
