"""Stability over noise seeds (the paper's Table 4): predict with N seeds, report each seed's
mean Dice and their standard deviation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leafnet.atomic import write_json
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.predictor import LEAFPredictor


def seed_stability(predictor: LEAFPredictor, images: Path, reference: Path, output: Path,
                   seeds: list[int], show_progress: bool = True) -> dict[str, Any]:
    """Predictions in ``output/seed_<s>/``, their summaries, and ``output/stability.json``."""
    per_seed = {}
    for seed in seeds:
        folder = output / f"seed_{seed}"
        predict_folder(predictor, images, folder, seed=seed, show_progress=show_progress)
        summary = evaluate_folders(reference, folder)
        write_json(folder / "summary.json", summary)
        per_seed[str(seed)] = summary["foreground_mean"]
    dice = np.array([m["Dice"] for m in per_seed.values()])
    iou = np.array([m["IoU"] for m in per_seed.values()])
    result = {"seeds": seeds, "per_seed": per_seed,
              "mean_dice": float(dice.mean()), "std_dice": float(dice.std(ddof=1))
              if len(seeds) > 1 else 0.0,
              "mean_iou": float(iou.mean()), "std_iou": float(iou.std(ddof=1))
              if len(seeds) > 1 else 0.0}
    write_json(output / "stability.json", result)
    return result
