"""The spread of a model's scores over noise seeds (the paper's Table 4): one schema for the
experiments' tables and ``leafnet_predict --seeds``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from leafnet.evaluation.summary import Summary

METRICS = ("Dice", "IoU")


def _mean_and_std(values: list[Mapping[str, float]]) -> dict[str, float | None]:
    """Each metric's mean over ``values`` and its standard deviation (ddof 1; None for one)."""
    result: dict[str, float | None] = {}
    for metric in METRICS:
        array = np.array([value[metric] for value in values], dtype=float)
        result[metric] = float(array.mean())
        result[f"{metric}_std"] = float(array.std(ddof=1)) if len(array) > 1 else None
    return result


def seed_spread(summaries: Mapping[int, Summary]) -> dict[str, Any]:
    """From one evaluation summary per seed: the seeds, each seed's
    foreground means, the mean and standard deviation of those means (``Dice``, ``Dice_std``,
    ``IoU``, ``IoU_std``) and the same per trained class (label or region, by name)."""
    seeds = sorted(summaries)
    per_seed = {str(seed): dict(summaries[seed].foreground_mean) for seed in seeds}
    per_class: dict[str, list[Mapping[str, float]]] = {}
    for seed in seeds:
        for name, means in summaries[seed].means_by_name().items():
            per_class.setdefault(name, []).append(means)
    return {"seeds": seeds, "num_cases": summaries[seeds[0]].num_cases,
            "per_seed": per_seed, **_mean_and_std(list(per_seed.values())),
            "per_class": {name: _mean_and_std(values) for name, values in per_class.items()}}
