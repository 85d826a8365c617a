"""The record of a trained fold, ``fold_record.json``: the one owner of what a fold folder is.

It holds the inputs that make the fold's weights what they are (trainer, plans and their digest,
preset, seed, the split's digest, the mask autoencoder's weights digest, latent scale and origin,
the teacher and the task's settings), the target it was asked to reach (steps, minutes), how
far it got, and the digest of every model it exported. ``--c`` compares a continuation with it
and refuses any difference, naming it and the command that starts over; prediction, export and
experiments ask it whether the weights they find are the ones the fold made. The fold folder's
other files (plans, dataset.json, split) are named here too, so no other module spells them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leafnet.atomic import copy_file, write_json
from leafnet.errors import LeafnetError
from leafnet.utilities.digests import file_digest, weights_digest
from leafnet.utilities.json_files import read_json

FOLD_RECORD_FILE = "fold_record.json"
FOLD_RECORD_VERSION = 1
FOLD_PLANS_FILE = "plans.json"
FOLD_DATASET_FILE = "dataset.json"
FOLD_SPLIT_FILE = "split.json"
OLDER_SETTINGS_FILE = "run_settings.json"
MODEL_CONFIG_FILES = ("network_config.json", "config.json", "latent_scale.json")


def model_digest(folder: Path) -> str:
    """A digest of a saved model: its safetensors and the configs that say how to read them
    (``network_config.json`` holds the latent scale)."""
    digest = hashlib.sha256(weights_digest(folder).encode())
    for name in MODEL_CONFIG_FILES:
        if (folder / name).is_file():
            digest.update(f"{name}:{file_digest(folder / name)};".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class FoldSplit:
    """One fold's cases: trained on, validated on, and the dataset's test cases
    (``split.json`` in the fold folder, a fold of ``splits_final.json``)."""

    train: list[str]
    val: list[str]
    test: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    @classmethod
    def from_json(cls, data: Any, source: Path | str) -> FoldSplit:
        """``data`` checked: three lists of case ids; an error names ``source``."""
        if not isinstance(data, dict) or not all(
                isinstance(data.get(part, []), list) and all(isinstance(case, str)
                                                            for case in data.get(part, []))
                for part in ("train", "val", "test")):
            raise LeafnetError(f"{source}: not a fold split (lists of case ids under train, val "
                               "and test)")
        return cls(list(data.get("train", [])), list(data.get("val", [])),
                   list(data.get("test", [])))

    def digest(self) -> str:
        """A digest of the three case lists (order included)."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()
                              ).hexdigest()[:16]


@dataclass(frozen=True)
class FirstStage:
    """The mask autoencoder a diffusion run encodes and decodes masks with: where its weights
    come from (a pretrained weights name, or a first stage's folder relative to the dataset's
    results), how they were made (``pretrained``, ``shipped`` with leafnet, ``shipped,
    fine-tuned here``, ``trained here``, or ``missing``), the digest of their bytes and the
    latent scale the network multiplies by."""

    source: str
    origin: str
    weights_sha256: str | None
    latent_scale: float | None


@dataclass(frozen=True)
class FoldInputs:
    """What makes a fold's weights what they are; any difference is another experiment."""

    trainer: str
    dataset: str
    plans: str
    plans_sha256: str
    preset: str
    fold: int
    seed: int
    split_sha256: str
    first_stage: FirstStage | None = None
    teacher: str | None = None
    teacher_sha256: str | None = None
    task: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FoldInputs:
        values = dict(data)
        stage = values.pop("first_stage", None)
        return cls(**values, first_stage=FirstStage(**stage) if stage else None)

    def flat(self) -> dict[str, Any]:
        """Every input as ``name`` or ``first_stage.name`` -> value (what differences name);
        the first stage's origin describes its weights and is not compared itself."""
        values = asdict(self)
        stage = values.pop("first_stage") or {}
        stage.pop("origin", None)
        task = values.pop("task")
        values.update({f"first_stage.{key}": value for key, value in stage.items()})
        values.update({f"task.{key}": value for key, value in task.items()})
        return values


@dataclass(frozen=True)
class Target:
    """What a run trains to: steps, wall-clock minutes, or both (whichever comes first)."""

    steps: int | None
    minutes: float | None


@dataclass
class FoldRecord:
    """Inputs, target, progress (steps done, training seconds) and the exported models'
    digests (``best`` / ``final`` -> digest of their safetensors)."""

    inputs: FoldInputs
    target: Target
    steps_done: int = 0
    train_seconds: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    version: int = FOLD_RECORD_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: Path) -> FoldRecord:
        """Read a record; one of a newer leafnet or not a record at all is refused."""
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
            raise LeafnetError(f"{source} is not a fold record; train the fold again (without "
                               "--c), or move the file away")
        version = data.get("version")
        if not isinstance(version, int) or version > FOLD_RECORD_VERSION:
            raise LeafnetError(f"{source} has record version {version!r}, written by a newer "
                               f"leafnet (this one reads up to {FOLD_RECORD_VERSION}); upgrade "
                               "leafnet")
        try:
            return cls(inputs=FoldInputs.from_json(data["inputs"]),
                       target=Target(**data["target"]), steps_done=int(data["steps_done"]),
                       train_seconds=float(data["train_seconds"]),
                       models=dict(data["models"]), version=version)
        except (KeyError, TypeError, ValueError) as error:
            raise LeafnetError(f"{source} is not a complete fold record ({error}); train the "
                               "fold again (without --c), or move the file away") from None

    def save(self, fold_folder: Path) -> None:
        """Write the record into ``fold_folder`` atomically."""
        write_json(fold_folder / FOLD_RECORD_FILE, self.to_json())


def write_fold_inputs(fold_folder: Path, plans: Path, dataset_json: Path,
                      split: FoldSplit) -> None:
    """Copy the plans and dataset.json a fold is trained under into it, and write its split."""
    for source, name in ((plans, FOLD_PLANS_FILE), (dataset_json, FOLD_DATASET_FILE)):
        copy_file(source, fold_folder / name)
    write_json(fold_folder / FOLD_SPLIT_FILE, split.to_json())


def read_fold_record(fold_folder: Path) -> FoldRecord | None:
    """The record of ``fold_folder``, or None for a folder without one (not trained yet, or
    trained by a leafnet before the record, which wrote ``run_settings.json``)."""
    path = fold_folder / FOLD_RECORD_FILE
    if not path.is_file():
        return None
    data = read_json(path, "train the fold again (without --c), or move the file away")
    return FoldRecord.from_json(data, path)


def input_differences(recorded: FoldInputs, current: FoldInputs) -> list[str]:
    """``name: recorded -> current`` for every input that differs."""
    old, new = recorded.flat(), current.flat()
    return [f"{key}: {old.get(key, 'not recorded')!r} -> {new.get(key, 'not set')!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def moved_cases(recorded: FoldSplit, current: FoldSplit) -> str:
    """The cases whose part of the split changed, in words (at most five named)."""
    where_then = {case: part for part, cases in recorded.to_json().items() for case in cases}
    where_now = {case: part for part, cases in current.to_json().items() for case in cases}
    moved = [f"{case} {where_then.get(case, 'absent')} -> {where_now.get(case, 'absent')}"
             for case in sorted(set(where_then) | set(where_now))
             if where_then.get(case) != where_now.get(case)]
    if not moved:
        return "the same cases in another order"
    more = f" and {len(moved) - 5} more" if len(moved) > 5 else ""
    return f"{len(moved)} case(s) moved: {', '.join(moved[:5])}{more}"


def _explain(changed: list[str], fold_folder: Path,
             current_split: FoldSplit | None) -> list[str]:
    """Why each kind of difference matters, in words beside the raw differences."""
    notes = []
    if any(line.startswith("split_sha256") for line in changed) and current_split is not None:
        with contextlib.suppress(LeafnetError):
            recorded = FoldSplit.from_json(read_json(fold_folder / FOLD_SPLIT_FILE),
                                           fold_folder / FOLD_SPLIT_FILE)
            notes.append(f"the fold's split changed ({moved_cases(recorded, current_split)}): "
                         "validation would score cases the weights were trained on")
    if any(line.startswith("first_stage.") for line in changed):
        notes.append("the mask autoencoder is not the one the run started with (retrained or "
                     "replaced): its latents mean something else to the weights trained so far")
    return notes


def check_continuation(fold_folder: Path, current: FoldRecord, extend: bool,
                       current_split: FoldSplit | None = None) -> FoldRecord:
    """The recorded record that ``--c`` continues (its target is still the recorded one; the
    caller sets ``current``'s, which ``extend`` allows). Refused, naming each difference: a
    folder without a record (an older leafnet's), other inputs, another target without
    ``extend``, or a target under what the run has already done (``--extend`` trains further,
    it never shrinks a run)."""
    recorded = read_fold_record(fold_folder)
    if recorded is None:
        older = (fold_folder / OLDER_SETTINGS_FILE).is_file()
        raise LeafnetError(
            f"--c cannot continue the run in {fold_folder}: "
            + ("it was started by an older leafnet, which recorded neither its split nor its mask "
               "autoencoder's weights (run_settings.json)" if older else
               f"it has no {FOLD_RECORD_FILE}") +
            ", so leafnet cannot tell whether continuing would mix two experiments. Start over "
            "(without --c), or train in another results folder")
    changed = input_differences(recorded.inputs, current.inputs)
    if changed:
        notes = _explain(changed, fold_folder, current_split)
        raise LeafnetError(
            f"--c would continue the run in {fold_folder} with other inputs than it was started "
            f"with ({'; '.join(changed)})" + "".join(f"; {note}" for note in notes) +
            ". Continue with the recorded settings, or start over: without --c (or in another "
            "results folder)")
    old, new = recorded.target, current.target
    if old == new:
        return recorded
    change = "; ".join(f"{name}: {getattr(old, name)!r} -> {getattr(new, name)!r}"
                       for name in ("steps", "minutes") if getattr(old, name) != getattr(new, name))
    if not extend:
        raise LeafnetError(
            f"--c would continue the run in {fold_folder} with another target ({change}). Give "
            "the recorded target, or add --extend to train it to the new one (the LR schedule "
            "then decays to the new end)")
    done_steps = max(recorded.steps_done, old.steps or 0)
    done_minutes = max(recorded.train_seconds / 60, old.minutes or 0.0)
    shrinks = ((new.steps is not None and new.steps < done_steps) or
               (new.minutes is not None and new.minutes < done_minutes))
    if shrinks:
        raise LeafnetError(
            f"--extend trains a run further; {change} would end the run in {fold_folder} before "
            f"what it was already asked for or did ({recorded.steps_done} steps, "
            f"{recorded.train_seconds / 60:.2f} minutes; target {old.steps} steps, "
            f"{old.minutes} minutes). Give a larger target, or start a shorter run without --c")
    return recorded


def continued_record(fold_folder: Path, current: FoldRecord, extend: bool,
                     current_split: FoldSplit | None = None) -> tuple[FoldRecord, str]:
    """The record a continuation (``--c``) trains under, checked by
    :func:`check_continuation`, with ``current``'s target; and a line for the log when
    ``--extend`` changed the target (empty otherwise)."""
    recorded = check_continuation(fold_folder, current, extend, current_split)
    note = ""
    if recorded.target != current.target:
        note = (f"the run's target changed with --extend: {describe_target(recorded.target)} "
                f"-> {describe_target(current.target)}")
    recorded.target = current.target
    return recorded, note


def describe_target(target: Target) -> str:
    """``1000 steps``, ``15 minutes`` or ``1000 steps or 15 minutes``."""
    steps = "" if target.steps is None else f"{target.steps} steps"
    budget = "" if target.minutes is None else f"{target.minutes:g} minutes"
    return " or ".join(part for part in (steps, budget) if part)


def check_checkpoint_inputs(path: Path, recorded: dict[str, Any] | None,
                            current: FoldInputs) -> None:
    """Refuse a checkpoint whose recorded inputs are not the run's (copied from another run);
    a checkpoint of an older leafnet records none and is not asked."""
    if recorded is None:
        return
    try:
        written = FoldInputs.from_json(recorded)
    except TypeError as error:
        raise LeafnetError(f"{path} records inputs this leafnet cannot read ({error}); move it "
                           "away, or start over without --c") from None
    changed = input_differences(written, current)
    if changed:
        raise LeafnetError(f"{path} was written by a run with other inputs "
                           f"({'; '.join(changed)}): it was copied from another run. Move it "
                           "away, or start over without --c")


def check_model(fold_folder: Path, checkpoint: str) -> None:
    """Refuse an exported ``model_<checkpoint>`` whose weights or config are not the ones the
    fold's training exported (replaced, copied, or left by an earlier run of the folder that
    was started over), or a fold whose plans.json is not the one it was trained under. A fold
    without a record is not asked when it is an older leafnet's (its run_settings.json) or
    came without training checkpoints (an archive); one trained here whose record was deleted
    is refused, since nothing could then be checked."""
    record = read_fold_record(fold_folder)
    if record is None:
        if any(fold_folder.glob("checkpoint_*.pth")) and \
                not (fold_folder / OLDER_SETTINGS_FILE).is_file():
            raise LeafnetError(
                f"{fold_folder} was trained here, but its {FOLD_RECORD_FILE} is missing, so its "
                "exported weights cannot be checked against its training: restore the file, "
                "or train the fold again")
        return
    plans = fold_folder / FOLD_PLANS_FILE
    if plans.is_file() and file_digest(plans) != record.inputs.plans_sha256:
        raise LeafnetError(
            f"{plans} is not the plans the fold was trained under ({FOLD_RECORD_FILE} records "
            f"digest {record.inputs.plans_sha256}): it was edited or copied from another fold. "
            "Restore it, or train the fold again")
    digest = model_digest(fold_folder / f"model_{checkpoint}")
    if checkpoint not in record.models:
        raise LeafnetError(
            f"{fold_folder / f'model_{checkpoint}'} was not exported by the fold's run "
            f"({FOLD_RECORD_FILE} lists {sorted(record.models) or 'no model yet'}): it is left "
            "from an earlier run of the folder, which was started over. Finish the run "
            "(leafnet_train ... --c), or predict with a checkpoint it exported (-chk)")
    if record.models[checkpoint] != digest:
        raise LeafnetError(
            f"{fold_folder / f'model_{checkpoint}'} holds other weights (digest {digest}) than "
            f"the fold's training exported (digest {record.models[checkpoint]}, "
            f"{FOLD_RECORD_FILE}): it was replaced or copied from another model. Train the fold "
            "again, or restore its own model folder")
