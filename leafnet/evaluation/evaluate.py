"""Comparing a folder of predictions with a folder of references: summary.json.

Keys follow nnU-Net: ``metric_per_case`` (one entry per case with its files and, per label or
region, Dice, IoU, voxel counts and optionally HD95), ``mean`` (per label or region) and
``foreground_mean`` (the mean over them). A label is keyed by its value (``"1"``), a region by
its values as nnU-Net writes them (``"(1, 2)"``); ``classes`` names each key. Empty masks:
both empty scores Dice = IoU = 1; an empty reference with a non-empty prediction scores 0.
HD95 is NaN (and left out of means) when either mask is empty. A class that no reference holds
is named in ``notes`` (and printed by leafnet_evaluate): its scores say nothing.
References are read by the rule their dataset.json records where one is given (a dataset's
label files: its label values; its source masks as distributed: the rule the converter read
them by), predictions and other references by the converter's mask rules decided from the
files (mask_rule.py); both rules are stated in the summary's ``mask_rules``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from leafnet.errors import LeafnetError
from leafnet.imageio.mask_facts import MaskFacts, mask_facts, read_mask_channel
from leafnet.imageio.mask_rule import MaskRule, decide_mask_rule
from leafnet.evaluation.metrics import dice_and_iou
from leafnet.evaluation.summary import ClassInfo, Summary
from leafnet.imageio import IMAGE_ENDINGS, file_ending, strip_ending
from leafnet.preprocessing.label_scheme import LabelClass
from leafnet.raw_format import DatasetDescription

MAX_IMPLICIT_LABELS = 10
EMPTY_CONVENTION = ("both reference and prediction empty: Dice = IoU = 1; empty reference, "
                    "non-empty prediction: 0; HD95 undefined (null in summary.json, NaN in "
                    "Python; excluded from means) when either is empty")


def surface(mask: np.ndarray) -> np.ndarray:
    """The object's pixels with a 4-neighbour outside it. The image is padded with background
    first, so an object cut by the image edge has its edge pixels on its surface."""
    return find_boundaries(np.pad(mask, 1), mode="inner")[1:-1, 1:-1]


def hd95(prediction: np.ndarray, reference: np.ndarray,
         spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances (pixels x spacing)."""
    if not prediction.any() or not reference.any():
        return float("nan")
    to_reference = ndimage.distance_transform_edt(~surface(reference), sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~surface(prediction), sampling=spacing)
    distances = np.concatenate([to_reference[surface(prediction)],
                                to_prediction[surface(reference)]])
    return float(np.percentile(distances, 95))


def mask_files(folder: Path, prefix: str = "", suffix: str = "") -> dict[str, Path]:
    """Mask files of ``folder`` by case: ``PREFIX + CASE + SUFFIX + ending``."""
    if not folder.is_dir():
        raise LeafnetError(f"{folder}: no such folder")
    files = {}
    for path in sorted(folder.iterdir()):
        stem = strip_ending(path.name)
        if (path.is_file() and file_ending(path) in IMAGE_ENDINGS and stem.startswith(prefix)
                and stem.endswith(suffix) and len(stem) > len(prefix) + len(suffix)):
            files[stem[len(prefix):len(stem) - len(suffix)]] = path
    return files


def evaluate_folders(reference: Path, prediction: Path, labels: list[int] | None = None,
                     with_hd95: bool = False, ref_affix: tuple[str, str] = ("", ""),
                     pred_affix: tuple[str, str] = ("", ""),
                     classes: list[LabelClass] | None = None,
                     dataset: DatasetDescription | None = None) -> Summary:
    """Per-case and mean Dice/IoU (and HD95) for every foreground label (or each of
    ``classes``), files paired by case name (``PREFIX + CASE + SUFFIX`` on either side, e.g.
    ``CASE_lesion.png`` with ``CASE.png``)."""
    references = mask_files(reference, *ref_affix)
    predictions = mask_files(prediction, *pred_affix)
    if not references:
        raise LeafnetError(f"{reference} holds no reference masks"
                           + (f" named {ref_affix[0]}CASE{ref_affix[1]}" if any(ref_affix)
                              else "") + "; nothing to evaluate")
    missing = sorted(set(references) - set(predictions))
    if missing:
        raise LeafnetError(f"{len(missing)} reference cases have no prediction in {prediction} "
                           f"(e.g. {missing[:5]}); predictions are paired by name"
                           + (" (see --ref-prefix/--ref-suffix and --pred-prefix/--pred-suffix)"))
    pairs = [(path, predictions[case]) for case, path in references.items()]
    summary = evaluate_pairs(pairs, labels, with_hd95, classes, dataset)
    unscored = sorted(set(predictions) - set(references))
    if unscored:
        summary.notes.append(f"{len(unscored)} predictions in {prediction} have no reference "
                             f"mask and are not scored (e.g. {unscored[:5]})")
    return summary


def _num_labels(facts: list[MaskFacts], labels: list[int] | None) -> int:
    """Labels are 0..N-1: small integer values are label images (values beyond ``labels`` are
    then reported as such), anything else binary (0/255 and other encodings of one
    foreground)."""
    values = {v for fact in facts for v in fact.values}
    implicit = max(values) + 1 if max(values, default=0) < MAX_IMPLICIT_LABELS else 2
    return max(implicit, max(labels) + 1 if labels else 0)


def recorded_rule(facts: list[MaskFacts], dataset: DatasetDescription) -> MaskRule | None:
    """The rule ``dataset``'s dataset.json records for masks like these: its label values when
    the files hold only those (labelsTr / labelsTs, or predictions), else the rule the converter
    read its one mask folder by (the source masks as distributed); None when it records
    neither for them."""
    values = {value for fact in facts for value in fact.values}
    if values <= set(dataset.labels.values()):
        return dataset.label_file_rule()
    recorded = dataset.mask_rules.one_folder_rule if dataset.mask_rules else None
    if recorded is None:
        return None
    return replace(recorded, statement=f"by the converter's rule in dataset.json: "
                                       f"{recorded.statement}")


def read_label_files(paths: list[Path], labels: list[int] | None, what: str,
                     dataset: DatasetDescription | None = None
                     ) -> tuple[list[np.ndarray], list[Any], str]:
    """The masks of ``paths`` as label arrays, read by one rule for all of them: the rule
    ``dataset``'s dataset.json records (:func:`recorded_rule`), else one decided from the files
    by the converter's rules (0/255, RGB and JPEG masks are read as binary, anything ambiguous
    is refused); also their properties and the rule in words. Each file is read once."""
    read = [read_mask_channel(path, None) for path in paths]
    facts = [mask_facts(path, *item) for path, item in zip(paths, read, strict=True)]
    rule = recorded_rule(facts, dataset) if dataset is not None else None
    if rule is None:
        rule = decide_mask_rule(facts, _num_labels(facts, labels), require_foreground=False)
    arrays, properties = [], []
    for path, (mask, props, _) in zip(paths, read, strict=True):
        label = rule.to_label(mask, path)
        if labels is not None:
            stray = sorted(set(np.unique(label).tolist()) - set(labels) - {0})
            if stray:
                raise LeafnetError(f"{path}: holds label values {stray} outside the evaluated "
                                   f"labels {labels}; add them to -l or fix the file")
        arrays.append(label)
        properties.append(props)
    return arrays, properties, f"{what} {rule.statement}"


def evaluate_pairs(pairs: list[tuple[Path, Path]], labels: list[int] | None = None,
                   with_hd95: bool = False, classes: list[LabelClass] | None = None,
                   dataset: DatasetDescription | None = None) -> Summary:
    """The summary for explicit (reference file, prediction file) pairs. Every case is scored
    on each of ``classes`` (labels or regions, e.g. a plans' label scheme), else on every label
    found in any reference or prediction (or on ``labels``), so false positives of a label a
    reference lacks count. ``labels`` are also the values the files may hold. References are
    read by the rule ``dataset``'s dataset.json records where it records one."""
    if not pairs:
        raise LeafnetError("no cases to evaluate")
    truths, properties, reference_rule = read_label_files([p for p, _ in pairs], labels,
                                                          "reference", dataset)
    predictions, _, prediction_rule = read_label_files([p for _, p in pairs], labels,
                                                       "prediction")
    if classes is None:
        values = labels or sorted({int(v) for array in truths + predictions
                                   for v in np.unique(array) if v != 0} or {1})
        classes = [LabelClass(str(value), (value,), value) for value in values]
    cases = []
    for (path, predicted_path), truth, predicted, props in zip(pairs, truths, predictions,
                                                               properties, strict=True):
        if truth.shape != predicted.shape:
            raise LeafnetError(f"{predicted_path}: size {predicted.shape} differs from the "
                               f"reference {truth.shape}")
        spacing = tuple(props.spacing[:2][::-1]) if props.spacing else (1.0, 1.0)
        metrics = {}
        for item in classes:
            found, wanted = np.isin(predicted, item.values), np.isin(truth, item.values)
            dice, iou = dice_and_iou(found, wanted)
            entry = {"Dice": dice, "IoU": iou, "n_ref": int(wanted.sum()),
                     "n_pred": int(found.sum())}
            if with_hd95:
                entry["HD95"] = hd95(found, wanted, spacing)
            metrics[item.key] = entry
        cases.append({"reference_file": str(path), "prediction_file": str(predicted_path),
                      "metrics": metrics})
    notes = [f"class {item.name} ({item.key}) is empty in all {len(cases)} references: its Dice "
             "is 1 where a prediction is empty too and 0 elsewhere, which says nothing about "
             "segmentation; check that the references hold the objects (masks drawn in alpha, "
             "the wrong folder or label)"
             for item in classes if not any(c["metrics"][item.key]["n_ref"] for c in cases)]
    mean = {}
    for label in (item.key for item in classes):
        entries = [c["metrics"][label] for c in cases]
        mean[label] = {key: float(np.nanmean([e[key] for e in entries]))
                       if not all(np.isnan(e[key]) for e in entries) else float("nan")
                       for key in entries[0] if key in ("Dice", "IoU", "HD95")}
    foreground = {key: float(np.nanmean([m[key] for m in mean.values()]))
                  for key in next(iter(mean.values()))} if mean else {}
    return Summary(metric_per_case=cases, mean=mean, foreground_mean=foreground,
                   num_cases=len(cases), labels=sorted({v for c in classes for v in c.values}),
                   classes={item.key: ClassInfo(item.name, list(item.values))
                            for item in classes},
                   mask_rules=[reference_rule, prediction_rule], notes=notes,
                   empty_reference_convention=EMPTY_CONVENTION)
