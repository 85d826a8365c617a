"""Plans: everything training and inference need to know about the data, as editable JSON.

Training reads only the plans and the preprocessed arrays, never the raw data, so a user can
change the target size, the normalisation window or the batch size here and re-run
preprocessing. Preprocessed images are stored as uint8 after the normalisation window; the
network input is then always ``x / 127.5 - 1``, in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leafnet.errors import LeafnetError
from leafnet.paths import plain_name
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import (
    DEFAULT_PLANS_NAME,
    Plans,
    PreviousStage,
    target_size_problems,
)
from leafnet.models.presets import PRESETS
from leafnet.models.shipped_autoencoder import load_shipped_autoencoder, plans_by_ceiling
from leafnet.planning.stages import plan_stages
from leafnet.raw_format import DatasetDescription

PLANS_NAME = DEFAULT_PLANS_NAME
PLANS_FILE = "leafnet_plans.json"
SPLITS_FILE = "splits_final.json"
DEFAULT_PRESET = "paper"
DEFAULT_BATCH_SIZE = 4
PREPROCESSING_VERSION = 1


def _normalisation(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """8-bit images keep their values (``/127.5 - 1`` at the input); anything else
    (16-bit, float, CT/MR-like) is clipped to its 0.5-99.5 percentile window first."""
    statistics = fingerprint["intensity_statistics_per_channel"]
    if fingerprint["dtypes"] == ["uint8"]:
        windows = [{"lower": 0.0, "upper": 255.0} for _ in statistics]
        scheme = "rgb8"
    else:
        windows = []
        for channel in statistics.values():
            overall = channel["overall"]
            lower, upper = overall["percentile_00_5"], overall["percentile_99_5"]
            if upper <= lower:
                lower, upper = overall["min"], max(overall["max"], overall["min"] + 1)
            windows.append({"lower": lower, "upper": upper})
        scheme = "percentile_clip"
    return {
        "scheme": scheme,
        "windows": windows,
        "stored_as": "uint8 = round((clip(x, lower, upper) - lower) / (upper - lower) * 255)",
        "network_input": "x / 127.5 - 1",
    }


def make_plans(
    dataset_name: str,
    description: DatasetDescription,
    fingerprint: dict[str, Any],
    preset: str = DEFAULT_PRESET,
    target_size: tuple[int, int] | None = None,
    label_names: list[str] | None = None,
    ceiling_labels: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The default plans for a dataset, from its dataset.json and fingerprint; the image size
    is ``target_size`` if given, else the preset's or larger where the smallest trained
    structure needs it (stages.py: measured on ``ceiling_labels``, the training labels, with
    the preset's shipped mask autoencoder, else from the fingerprint), and every label (or
    region) is trained unless ``label_names`` chooses some."""
    check_plan_options(preset, target_size)
    if description.num_channels not in (1, 3):
        raise LeafnetError(
            f"{dataset_name} has {description.num_channels} channels; leafnet handles 1 "
            "(gray, replicated to RGB) or 3 (RGB) because the autoencoder takes RGB images"
        )
    try:
        scheme = LabelScheme.for_dataset(description.labels, description.regions, label_names)
    except LeafnetError as error:
        raise LeafnetError(f"{dataset_name}: {error}") from None
    next_stage = None
    if target_size is None:
        measuring = bool(ceiling_labels) and plans_by_ceiling(preset)
        stages = plan_stages(fingerprint, scheme, PRESETS[preset].target_size,
                             labels=ceiling_labels,
                             autoencoder=load_shipped_autoencoder(preset) if measuring else None)
        target_size, size_rule, next_stage = stages.target_size, stages.rule, stages.next_stage
    else:
        size_rule = given_size_rule(target_size)
    height, width = target_size
    content = {
        "plans_name": PLANS_NAME,
        "dataset_name": dataset_name,
        "data_identifier": f"{PLANS_NAME}_{height}x{width}",
        "target_size": [height, width],
        "target_size_rule": size_rule,
        "num_channels": description.num_channels,
        "channel_names": description.channel_names,
        "network_input_channels": 3,
        "channel_handling": "replicate gray to RGB" if description.num_channels == 1 else "as is",
        "resampling": {
            "image": "bilinear, antialiased when shrinking (Pillow)",
            "label": "nearest neighbour (no new label values)",
            "to_original": "label: nearest neighbour; probabilities: bilinear",
        },
        "normalisation": _normalisation(fingerprint),
        "labels": description.labels,
        "regions": description.regions,
        "label_handling": scheme.to_json(),
        "batch_size": DEFAULT_BATCH_SIZE,
        "preset": preset,
        "preprocessing_version": PREPROCESSING_VERSION,
    }
    if next_stage is not None:
        content["next_stage"] = next_stage.to_json()
    return content


def make_crop_stage_plans(coarse: Plans) -> dict[str, Any]:
    """The crop stage's plans after ``coarse`` (plans with a ``next_stage``): the same data,
    labels and preset, on crops around the foreground at the link's target size, linked back by
    ``previous_stage``."""
    link = coarse.next_stage
    assert link is not None
    height, width = link.target_size
    rule = coarse.json.get("target_size_rule", {})
    return {**{key: value for key, value in coarse.json.items() if key != "next_stage"},
            "plans_name": link.plans,
            "data_identifier": f"{link.plans}_{height}x{width}",
            "target_size": [height, width],
            "target_size_rule": {**rule, "chosen": [height, width], "stage": 2},
            "previous_stage": PreviousStage(coarse.plans_name, link.margin, True).to_json()}


def given_size_rule(target_size: tuple[int, int]) -> dict[str, Any]:
    """The plans' record of a target size the user chose."""
    return {"chosen": list(target_size),
            "decision": f"target size {target_size[0]}x{target_size[1]}, given with "
                        "--target-size"}


def check_plan_options(preset: str, target_size: tuple[int, int] | None) -> None:
    if preset not in PRESETS:
        raise LeafnetError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    if target_size is None:
        return
    problems = target_size_problems(tuple(target_size))
    if problems:
        raise LeafnetError(problems[0])


def check_plans_match(plans: Plans, description: DatasetDescription, path: Path) -> None:
    """Refuse plans made for another version of the raw dataset (other channels or labels),
    which would otherwise be used stale."""
    differences = []
    if plans.num_channels != description.num_channels:
        differences.append(f"{plans.num_channels} channel(s) in the plans, "
                           f"{description.num_channels} in the raw dataset")
    elif plans.json.get("channel_names", description.channel_names) != description.channel_names:
        differences.append(f"channels {plans.json['channel_names']} in the plans, "
                           f"{description.channel_names} in the raw dataset (the intensity "
                           "normalisation depends on them)")
    if plans.labels != description.labels:
        differences.append(f"labels {plans.labels} in the plans, {description.labels} "
                           "in the raw dataset")
    if plans.json.get("regions", {}) != description.regions:
        differences.append(f"regions {plans.json.get('regions', {})} in the plans, "
                           f"{description.regions} in the raw dataset")
    if differences:
        raise LeafnetError(
            f"{path} was made for another version of the raw dataset ({'; '.join(differences)}). "
            "Plan it again with 'leafnet_plan_and_preprocess -d ID --clean' (edits to the plans "
            "are lost), or fix the plans file")


def plans_file(plans_name: str) -> str:
    """The file of plans ``plans_name``: ``leafnet_plans.json`` for the default plans."""
    plain_name(plans_name, "plans name", "-p")
    return PLANS_FILE if plans_name == PLANS_NAME else f"{plans_name}.json"
