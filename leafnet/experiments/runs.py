"""One table row's training run: reused when it is finished, resumed when it is not, skipped
(with the reason) when it needs teacher weights that are not installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leafnet.errors import LeafnetError
from leafnet.models.fold_record import input_differences, read_fold_record
from leafnet.models.teacher_specs import teacher_spec
from leafnet.models.weights.store import installed
from leafnet.training.checkpointing import FINAL, load_checkpoint
from leafnet.training.loop import Trainer
from leafnet.training.registry import find_trainer
from leafnet.training.trainers.base import LEAFTrainer

# The tables' rows share one first stage trained on the masks alone (the frozen autoencoder
# only ever codes masks), whatever each row's trainer would pick by itself.
TABLE_FIRST_STAGE = "LEAFAutoencoderTrainer_masks"


@dataclass(frozen=True)
class RunSettings:
    """What every run of one table shares, so that its rows differ only in the trainer."""

    dataset: str | int
    fold: int = 0
    plans: str = "leafnetPlans"
    preset: str | None = None
    steps: int | None = None
    seed: int = 12345
    validate_every: int | None = None
    first_stage: str = TABLE_FIRST_STAGE
    first_stage_steps: int | None = None
    device: str | None = None
    show_progress: bool = True


@dataclass
class Run:
    trainer: LEAFTrainer
    status: str
    reason: str = ""
    final_state: dict[str, Any] | None = None

    @property
    def folder(self) -> Path:
        return self.trainer.output


def make_trainer(name: str, settings: RunSettings, steps: int | None = None) -> Trainer:
    """The trainer of one row; a table trains its rows further when asked for more steps, so
    a changed target is an extension (other changed settings are still refused)."""
    trainer_class = find_trainer(name)
    options = ({"first_stage": settings.first_stage} if issubclass(trainer_class, LEAFTrainer)
               else {})
    return trainer_class(
        settings.dataset, fold=settings.fold, plans_name=settings.plans, preset=settings.preset,
        device=settings.device, seed=settings.seed, num_steps=steps,
        validate_every=settings.validate_every, show_progress=settings.show_progress,
        extend=True, **options)


def missing_teacher(trainer: LEAFTrainer) -> str | None:
    """Why ``trainer`` cannot run here (its teacher's weights are not installed), or None."""
    if trainer.teacher is None:
        return None
    entry = teacher_spec(trainer.teacher).entry
    if installed().get(entry) is not None:
        return None
    return (f"needs the {entry} teacher weights, not installed "
            f"(leafnet_weights fetch {entry})")


def finished_state(trainer: Trainer) -> dict[str, Any] | None:
    """The final checkpoint of ``trainer``'s run if its fold record shows the same inputs and
    the requested steps done; None when there is none or it has fewer steps (so training
    resumes). Other inputs, more steps, or a run without a record are refused."""
    path = trainer.output / FINAL
    if not path.is_file():
        return None
    record = read_fold_record(trainer.output)
    if record is None:
        raise LeafnetError(f"{trainer.output} was trained by an older leafnet, which recorded "
                           "neither its split nor its first stage; move the folder away to "
                           "train it again")
    changed = input_differences(record.inputs, trainer.fold_inputs())
    if changed:
        raise LeafnetError(f"{trainer.output} was trained with other inputs than this table "
                           f"asks for ({'; '.join(changed)}); pass the recorded settings to "
                           "reuse it, or move the folder away to train it again")
    if record.steps_done > trainer.num_steps:
        raise LeafnetError(f"{trainer.output} was trained for {record.steps_done} steps, more "
                           f"than the {trainer.num_steps} requested; pass --steps "
                           f"{record.steps_done} to reuse it or move the folder away to train it "
                           "again")
    return load_checkpoint(path) if record.steps_done == trainer.num_steps else None


def ensure_first_stage(trainer: LEAFTrainer, settings: RunSettings) -> None:
    """Train (or finish) the first-stage autoencoder a preset without pretrained weights needs."""
    if trainer.preset.pretrained is not None:
        return
    first = make_trainer(settings.first_stage, settings, settings.first_stage_steps)
    if settings.first_stage_steps is None and (first.output / FINAL).is_file():
        return
    if finished_state(first) is None:
        first.run(continue_training=True)


def ensure_run(name: str, settings: RunSettings) -> Run:
    """The row's run: skipped, reused as it is, or trained / resumed to the requested steps."""
    trainer = make_trainer(name, settings, settings.steps)
    reason = missing_teacher(trainer)
    if reason is not None:
        return Run(trainer, "skipped", reason)
    state = finished_state(trainer)
    if state is not None:
        return Run(trainer, "reused", final_state=state)
    ensure_first_stage(trainer, settings)
    trainer.run(continue_training=True)
    return Run(trainer, "trained", final_state=load_checkpoint(trainer.output / FINAL))
