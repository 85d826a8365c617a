"""Comparing a folder of predictions with a folder of references: summary.json.

Keys follow nnU-Net: ``metric_per_case`` (one entry per case with its files and, per label,
Dice, IoU, voxel counts and optionally HD95), ``mean`` (per label) and ``foreground_mean`` (the
mean over labels). Empty masks: both empty scores Dice = IoU = 1; an empty reference with a
non-empty prediction scores 0. HD95 is NaN (and left out of means) when either mask is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.evaluation.metrics import dice_and_iou
from leafnet.imageio import IMAGE_ENDINGS, file_ending, read_label, strip_ending

EMPTY_CONVENTION = ("both reference and prediction empty: Dice = IoU = 1; empty reference, "
                    "non-empty prediction: 0; HD95 undefined (NaN, excluded from means) when "
                    "either is empty")


def hd95(prediction: np.ndarray, reference: np.ndarray,
         spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances (pixels x spacing)."""
    if not prediction.any() or not reference.any():
        return float("nan")

    def surface(mask: np.ndarray) -> np.ndarray:
        return mask & ~ndimage.binary_erosion(mask)

    to_reference = ndimage.distance_transform_edt(~surface(reference), sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~surface(prediction), sampling=spacing)
    distances = np.concatenate([to_reference[surface(prediction)],
                                to_prediction[surface(reference)]])
    return float(np.percentile(distances, 95))


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise LeafnetError(f"{folder}: no such folder")
    return {strip_ending(p.name): p for p in sorted(folder.iterdir())
            if p.is_file() and file_ending(p) in IMAGE_ENDINGS}


def evaluate_folders(reference: Path, prediction: Path, labels: list[int] | None = None,
                     with_hd95: bool = False) -> dict[str, Any]:
    """Per-case and mean Dice/IoU (and HD95) for every foreground label, files paired by name."""
    references, predictions = _files(reference), _files(prediction)
    missing = sorted(set(references) - set(predictions))
    if missing:
        raise LeafnetError(f"{len(missing)} reference cases have no prediction in {prediction} "
                           f"(e.g. {missing[:5]})")
    pairs = [(path, predictions[case]) for case, path in references.items()]
    return evaluate_pairs(pairs, labels, with_hd95)


def evaluate_pairs(pairs: list[tuple[Path, Path]], labels: list[int] | None = None,
                   with_hd95: bool = False) -> dict[str, Any]:
    """The summary for explicit (reference file, prediction file) pairs."""
    cases = []
    for path, predicted_path in pairs:
        truth, properties = read_label(path)
        predicted, _ = read_label(predicted_path)
        if truth.shape != predicted.shape:
            raise LeafnetError(f"{predicted_path}: size {predicted.shape} differs from the "
                               f"reference {truth.shape}")
        spacing = tuple(properties.spacing[:2][::-1]) if properties.spacing else (1.0, 1.0)
        values = labels or sorted(int(v) for v in set(np.unique(truth)) | {1} if v != 0)
        metrics = {}
        for value in values:
            dice, iou = dice_and_iou(predicted == value, truth == value)
            entry = {"Dice": dice, "IoU": iou, "n_ref": int((truth == value).sum()),
                     "n_pred": int((predicted == value).sum())}
            if with_hd95:
                entry["HD95"] = hd95(predicted == value, truth == value, spacing)
            metrics[str(value)] = entry
        cases.append({"reference_file": str(path), "prediction_file": str(predicted_path),
                      "metrics": metrics})
    all_labels = sorted({k for c in cases for k in c["metrics"]}, key=int)
    mean = {}
    for label in all_labels:
        entries = [c["metrics"][label] for c in cases if label in c["metrics"]]
        mean[label] = {key: float(np.nanmean([e[key] for e in entries]))
                       if not all(np.isnan(e[key]) for e in entries) else float("nan")
                       for key in entries[0] if key in ("Dice", "IoU", "HD95")}
    foreground = {key: float(np.nanmean([m[key] for m in mean.values()]))
                  for key in next(iter(mean.values()))} if mean else {}
    return {"metric_per_case": cases, "mean": mean, "foreground_mean": foreground,
            "num_cases": len(cases), "empty_reference_convention": EMPTY_CONVENTION}


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
