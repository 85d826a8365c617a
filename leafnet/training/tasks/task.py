"""The contract between the training loop and a task, and what a task knows of its run.

The loop owns the optimizer, the LR schedule, EMA, DDP, checkpoints, logging and the validation
cadence; a task owns its modules and what they mean: which parameters train, the losses of one
step, validation, the model part of a checkpoint and the exported inference model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leafnet.evaluation.metrics import dice_and_iou
from leafnet.models.fold_record import FirstStage
from leafnet.models.presets import Preset
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import PreprocessedCases
from leafnet.training.distributed import DistributedContext
from leafnet.utilities.machine import autocast
from leafnet.utilities.picks import evenly_spaced


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """The torch generator of training step ``step`` (noise, timesteps): exact resume needs
    every random draw of a step to be a function of (seed, step)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + salt)


@dataclass
class RunContext:
    """What a task knows of the run it is trained in."""

    dataset_folder: Path
    plans_name: str
    plans: Plans
    preset: Preset
    fold: int
    seed: int
    device: str
    output: Path
    split: dict[str, list[str]]
    train_cases: PreprocessedCases
    val_cases: PreprocessedCases
    distributed: DistributedContext
    global_batch: int
    validation_batch_size: int
    show_progress: bool
    log: Callable[[str], None]
    cpu_bf16: bool = False

    def autocast(self) -> torch.autocast:
        """The run's mixed precision (bf16 on CUDA; on the CPU when the trainer asks)."""
        return autocast(self.device, self.cpu_bf16)

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.distributed.world_size

    def local(self, array):
        """This process's share of a global batch (DDP splits every batch by rank)."""
        start = self.distributed.rank * self.local_batch
        return array[start:start + self.local_batch]

    def training_masks(self, count: int) -> np.ndarray:
        """The coded masks ``(N, C, H, W)`` of up to ``count`` training cases, evenly spaced
        over the fold's list (what a first stage's reconstruction ceiling is measured on)."""
        indices = evenly_spaced(range(len(self.train_cases)), count)
        return np.stack([self.train_cases.image_and_mask(index)[1] for index in indices])

    def validation_batches(self) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Validation images (on the device) and their target masks, in batches."""
        cases, size = self.val_cases, self.validation_batch_size
        for start in range(0, len(cases), size):
            pairs = [cases.image_and_mask(i) for i in range(start, min(start + size, len(cases)))]
            yield (torch.from_numpy(np.stack([p[0] for p in pairs])).to(self.device),
                   np.stack([p[1] for p in pairs]))


def mean_dice_and_iou(scheme: LabelScheme, probabilities: list[np.ndarray],
                      targets: list[np.ndarray]) -> dict[str, float]:
    """Mean Dice and IoU over images and the scheme's classes (labels or regions), the
    predicted channels and the coded targets both decoded by the label scheme (the validation
    score that picks checkpoint_best)."""
    scores = [dice_and_iou(found, wanted) for probability, target
              in zip(probabilities, targets, strict=True)
              for found, wanted in zip(scheme.class_masks(scheme.decode(probability)),
                                       scheme.class_masks(scheme.decode(target)), strict=True)]
    return {"dice": float(np.mean([s[0] for s in scores])),
            "iou": float(np.mean([s[1] for s in scores]))}


class TrainingTask(ABC):
    """One thing to train. Subclasses build modules in :meth:`build`, not in ``__init__``, so
    that a trainer can be constructed (and its errors named) before any weights load."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    @abstractmethod
    def build(self) -> list[nn.Parameter]:
        """Build the modules; return the parameters the optimizer trains."""

    @abstractmethod
    def ema_parameters(self) -> list[nn.Parameter]:
        """The parameters the EMA follows (validated, checkpointed and exported as EMA)."""

    @abstractmethod
    def trained_module(self) -> nn.Module:
        """The module one training forward runs through (the loop wraps it in DDP)."""

    @abstractmethod
    def compute_losses(self, module: nn.Module, batch: dict[str, Any],
                       step: int) -> dict[str, torch.Tensor]:
        """The losses of ``batch`` at ``step``; ``"loss"`` is the one minimised."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Validation metrics (``dice`` picks checkpoint_best); empty without validation cases."""

    @abstractmethod
    def model_state(self) -> dict[str, Any]:
        """The model part of a checkpoint."""

    @abstractmethod
    def load_model_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`model_state` returned."""

    @abstractmethod
    def export(self, checkpoint: str) -> Path | None:
        """Save the inference model of ``checkpoint`` (the EMA weights are in place); return
        its folder (its digest goes into the fold record), or None when nothing was saved."""

    def batches(self, start: int) -> Iterator[dict[str, Any]] | None:
        """The task's own batches from step ``start`` (each a function of its step, for an
        exact resume), or None for the fold's training cases (data_loading.py)."""
        return None

    def settings(self) -> dict[str, Any]:
        """Task settings that are part of the run's identity (the fold record's inputs)."""
        return {}

    def first_stage_identity(self) -> FirstStage | None:
        """The mask autoencoder the task's network is built on (or, for a first stage, the
        weights it starts from); None when there is none."""
        return None

    def teacher_identity(self) -> tuple[str | None, str | None]:
        """The teacher whose features the task aligns to and a digest of its weights."""
        return None, None

    def start_notes(self) -> list[str]:
        """Lines the loop logs when a run starts or resumes (after :meth:`build`)."""
        return []

    def goal_due(self, done: int) -> bool:
        """Whether :meth:`goal_reached` is to be asked after ``done`` steps; a task without a
        goal trains to its steps or minutes."""
        return False

    def goal_reached(self, done: int) -> bool:
        """Whether training may stop after ``done`` steps because the task reached its goal
        (the EMA weights are in place)."""
        return False

    def after_training(self) -> None:
        """Work after the final checkpoint (the diffusion task predicts its test cases)."""
