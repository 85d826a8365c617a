"""Stability over noise seeds (the paper's Table 4): predict with N seeds, report each seed's
mean Dice (over labels, and per label or region) and their standard deviation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leafnet.atomic import write_json
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.segmenter import Segmenter


def _spread(dice: list[float]) -> dict[str, float]:
    return {"mean_dice": float(np.mean(dice)),
            "std_dice": float(np.std(dice, ddof=1)) if len(dice) > 1 else 0.0}


def seed_stability(predictor: Segmenter, images: Path, reference: Path, output: Path,
                   seeds: list[int], show_progress: bool = True) -> dict[str, Any]:
    """Predictions in ``output/seed_<s>/``, their summaries, and ``output/stability.json``."""
    per_seed = {}
    for seed in seeds:
        folder = output / f"seed_{seed}"
        predict_folder(predictor, images, folder, seed=seed, show_progress=show_progress)
        scheme = predictor.plans.label_scheme
        summary = evaluate_folders(reference, folder, classes=list(scheme.classes))
        write_json(folder / "summary.json", summary)
        per_seed[str(seed)] = {**summary["foreground_mean"], "per_class": {
            summary["classes"][key]["name"]: means for key, means in summary["mean"].items()}}
    dice = np.array([m["Dice"] for m in per_seed.values()])
    iou = np.array([m["IoU"] for m in per_seed.values()])
    result = {"seeds": seeds, "per_seed": per_seed,
              "mean_dice": float(dice.mean()), "std_dice": float(dice.std(ddof=1))
              if len(seeds) > 1 else 0.0,
              "mean_iou": float(iou.mean()), "std_iou": float(iou.std(ddof=1))
              if len(seeds) > 1 else 0.0,
              "per_class": {name: _spread([m["per_class"][name]["Dice"]
                                           for m in per_seed.values()])
                            for name in next(iter(per_seed.values()))["per_class"]}}
    write_json(output / "stability.json", result)
    return result
