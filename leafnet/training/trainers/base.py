"""LEAFTrainer: the loop (loop.py) training the LEAF diffusion task (tasks/diffusion.py).

Its class attributes are the settings a variant changes (variants.py): the parameterization,
the teacher and lambda of the feature alignment, where the teacher's features come from, and
which first stage a preset without a pretrained autoencoder uses.
"""

from __future__ import annotations

from typing import Any

from leafnet.errors import LeafnetError
from leafnet.training.loop import Trainer
from leafnet.training.tasks.alignment import FeatureAlignment
from leafnet.training.tasks.autoencoder import FIRST_STAGE_RECORD
from leafnet.training.tasks.diffusion import DiffusionTask, first_stage_folder
from leafnet.training.tasks.task import RunContext

AUTOENCODER_TRAINER = "LEAFAutoencoderTrainer"


class LEAFTrainer(Trainer):
    """Trains the LEAF network (x0 prediction, no teacher)."""

    prediction_type = "x0"
    teacher: str | None = None
    distill_lambda = 0.0
    teacher_features = "cache"
    first_stage = AUTOENCODER_TRAINER
    timestep_sampling = "uniform"
    pixel_loss_weight = 0.0

    def __init__(self, *args: Any, lam: float | None = None, first_stage: str | None = None,
                 **options: Any) -> None:
        if lam is not None:
            if self.teacher is None:
                raise LeafnetError(f"--lam weights the feature alignment to a teacher, and "
                                   f"{type(self).__name__} has none; use a distillation trainer "
                                   "(e.g. LEAFTrainer_x0_distill)")
            self.distill_lambda = lam
        if first_stage is not None:
            self.first_stage = first_stage
        super().__init__(*args, **options)

    def make_task(self, run: RunContext) -> DiffusionTask:
        if self.teacher is not None and self.teacher_features == "cache" and (
                self.augmentation != "flips"):
            raise LeafnetError(
                f"{self.name}: the cached teacher features describe the flipped views only, "
                f"not '{self.augmentation}' augmentation; set teacher_features = 'online' (the "
                "teacher then sees the augmented image) or augmentation = 'flips'")
        alignment = None if self.teacher is None else FeatureAlignment(
            run, self.teacher, self.distill_lambda, self.teacher_features)
        return DiffusionTask(run, self.prediction_type, self.first_stage, alignment,
                             self.timestep_sampling, self.pixel_loss_weight)

    def first_stage_missing(self) -> bool:
        """Whether this run's preset needs a first stage trained on the dataset that is not
        there yet."""
        if self.preset.pretrained is not None:
            return False
        folder = first_stage_folder(self.folder.name, self.first_stage, self.plans_name,
                                    self.preset.name, self.fold)
        return not (folder / FIRST_STAGE_RECORD).is_file()
