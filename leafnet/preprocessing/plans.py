"""The plans file, read and checked once: every reader uses :class:`Plans`' fields.

Plans are plain JSON a user may edit (planning/plans.py makes them). Preprocessing, training,
prediction and the experiments read them through this class, the way nnU-Net's PlansManager
owns its plans: a missing or mistyped entry is one error naming the file, and the names that
become paths are checked where they are read.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leafnet.errors import LeafnetError
from leafnet.paths import plain_name
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.utilities.json_files import read_json

DEFAULT_PLANS_NAME = "leafnetPlans"
MAX_TARGET_SIDE = 4096
MAX_BATCH_SIZE = 1024
MAX_CROP_MARGIN = 10.0
_PREPROCESSING_KEYS = ("target_size", "normalisation", "resampling", "preprocessing_version")


@dataclass(frozen=True)
class PreviousStage:
    """The link of a crop stage to its coarse stage: this plans' cases are crops, ``margin``
    times the structure's size, around the foreground that the model of ``plans`` finds in the
    whole image (at training time: around the reference; preprocessing/roi_crop.py)."""

    plans: str
    margin: float
    jitter: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"plans": self.plans, "margin": self.margin, "training_jitter": self.jitter}


@dataclass(frozen=True)
class NextStage:
    """The link of a coarse stage to the crop stage that planning made after it."""

    plans: str
    target_size: tuple[int, int]
    margin: float

    def to_json(self) -> dict[str, Any]:
        return {"plans": self.plans, "target_size": list(self.target_size),
                "margin": self.margin}


def current_schema(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (plans JSON) with the stage links of plans written before the stage graph
    renamed to today's: ``cascade`` -> ``next_stage``, ``roi_crop`` -> ``previous_stage``."""
    data = dict(data)
    old_next = data.pop("cascade", None)
    if old_next is not None and "next_stage" not in data:
        data["next_stage"] = {"plans": old_next["roi_plans"],
                              "target_size": old_next["roi_target_size"],
                              "margin": old_next["margin"]}
    old_previous = data.pop("roi_crop", None)
    if old_previous is not None and "previous_stage" not in data:
        data["previous_stage"] = {"plans": old_previous["coarse_plans"],
                                  "margin": old_previous["margin"],
                                  "training_jitter": old_previous.get("training_jitter", False)}
    return data


def target_size_problems(target_size: tuple[int, ...]) -> list[str]:
    """What is wrong with a target size (empty when it is two multiples of 8, the autoencoder's
    downsampling, in 8..MAX_TARGET_SIDE)."""
    if len(target_size) == 2 and all(8 <= side <= MAX_TARGET_SIDE and side % 8 == 0
                                     for side in target_size):
        return []
    return [f"target size {list(target_size)} must be two multiples of 8 (the autoencoder "
            f"downsamples by 8) from 8 to {MAX_TARGET_SIDE}, e.g. 256 256"]


@dataclass(frozen=True)
class Plans:
    """Typed view of one plans file; ``json`` is the file's content as written, with the stage
    links of older plans renamed (:func:`current_schema`)."""

    json: dict[str, Any]
    source: str
    plans_name: str
    data_identifier: str
    target_size: tuple[int, int]
    num_channels: int
    windows: list[dict[str, float]]
    labels: dict[str, int]
    label_scheme: LabelScheme
    batch_size: int
    preset: str
    previous_stage: PreviousStage | None = None
    next_stage: NextStage | None = None

    @classmethod
    def from_json(cls, data: Any, source: Path | str) -> Plans:
        """Check ``data`` (a plans dict) and expose it; errors name ``source``."""
        if not isinstance(data, dict) or "data_identifier" not in data:
            raise LeafnetError(f"{source}: is not a leafnet plans file (no data_identifier); "
                               "delete it and run leafnet_plan_and_preprocess again")
        try:
            data = current_schema(data)
            target = tuple(int(side) for side in data["target_size"])
            plans = cls(
                json=data, source=str(source),
                plans_name=plain_name(data.get("plans_name", DEFAULT_PLANS_NAME), "plans_name",
                                      source),
                data_identifier=plain_name(data["data_identifier"], "data_identifier", source),
                target_size=(target[0], target[1]),
                num_channels=int(data["num_channels"]),
                windows=list(data["normalisation"]["windows"]),
                labels={str(k): int(v) for k, v in data["labels"].items()},
                label_scheme=LabelScheme.from_plans(
                    {str(k): int(v) for k, v in data["labels"].items()},
                    data["label_handling"], str(source)),
                batch_size=int(data["batch_size"]),
                preset=str(data["preset"]),
                previous_stage=_previous_stage(data.get("previous_stage"), source),
                next_stage=_next_stage(data.get("next_stage"), source),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise LeafnetError(f"{source}: plans entry missing or malformed ({error!r}); fix it, "
                               "or run leafnet_plan_and_preprocess --clean to plan again") \
                from None
        if len(target) != 2 or len(plans.windows) != plans.num_channels:
            raise LeafnetError(f"{source}: target_size needs two sides and normalisation one "
                               f"window per channel ({plans.num_channels})")
        problems = target_size_problems(target) + (
            [] if 1 <= plans.batch_size <= MAX_BATCH_SIZE else
            [f"batch_size {plans.batch_size} must lie in 1..{MAX_BATCH_SIZE}"]) + (
            [] if plans.num_channels in (1, 3) else
            [f"num_channels {plans.num_channels} must be 1 or 3"])
        if problems:
            raise LeafnetError(f"{source}: {'; '.join(problems)}; fix it, or run "
                               "leafnet_plan_and_preprocess --clean to plan again")
        return plans

    @classmethod
    def load(cls, path: Path, missing_fix: str | None = None) -> Plans | None:
        """The plans at ``path``; None when missing and ``missing_fix`` is None."""
        data = read_json(path, missing_fix)
        return None if data is None else cls.from_json(data, path)

    def preprocessing_hash(self) -> str:
        """A digest of the entries that change the preprocessed arrays."""
        relevant = {key: self.json[key] for key in _PREPROCESSING_KEYS}
        if self.previous_stage is not None:
            relevant["previous_stage"] = self.previous_stage.to_json()
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _previous_stage(entry: Any, source: Path | str) -> PreviousStage | None:
    """The plans' ``previous_stage`` entry, checked: a plain plans name and a margin of at
    least 1."""
    if entry is None:
        return None
    margin = float(entry["margin"])
    if not math.isfinite(margin) or not 1 <= margin <= MAX_CROP_MARGIN:
        raise LeafnetError(f"{source}: previous_stage margin must be a number from 1 to "
                           f"{MAX_CROP_MARGIN:g} (the crop's side over the region's longer side; "
                           "a larger crop is the whole image: plan one stage instead), got "
                           f"{entry['margin']!r}")
    jitter = entry.get("training_jitter", False)
    if not isinstance(jitter, bool):
        raise LeafnetError(f"{source}: previous_stage training_jitter must be true or false, "
                           f"got {jitter!r}")
    return PreviousStage(plain_name(entry["plans"], "previous_stage plans", source), margin,
                         jitter)


def _next_stage(entry: Any, source: Path | str) -> NextStage | None:
    """The plans' ``next_stage`` entry, checked: a plain plans name and a valid target size."""
    if entry is None:
        return None
    size = tuple(int(side) for side in entry["target_size"])
    problems = target_size_problems(size)
    if problems:
        raise LeafnetError(f"{source}: next_stage {problems[0]}")
    return NextStage(plain_name(entry["plans"], "next_stage plans", source), (size[0], size[1]),
                     float(entry["margin"]))
