"""Predicting cases of a raw dataset by id (a fold's validation or test split, wherever its files
are) at their original size, and scoring predictions against their labels."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_pairs, write_summary
from leafnet.imageio import write_label
from leafnet.inference.segmenter import Segmenter
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.raw_format import CaseFiles, dataset_cases, load_dataset_json, read_case


def split_cases(raw_dataset: Path, case_ids: list[str]) -> dict[str, CaseFiles]:
    """The files of ``case_ids``, wherever they are (imagesTr or imagesTs), in that order."""
    description = load_dataset_json(raw_dataset)
    subsets = dataset_cases(raw_dataset, description.image_ending, description.file_ending)
    cases = {**subsets.get("Tr", {}), **subsets.get("Ts", {})}
    unknown = sorted(set(case_ids) - set(cases))
    if unknown:
        raise LeafnetError(f"cases {unknown[:5]} of the split are not in {raw_dataset}; the raw "
                           "dataset changed after planning: run leafnet_plan_and_preprocess again")
    return {case_id: cases[case_id] for case_id in case_ids}


def score_predictions(raw_dataset: Path, case_ids: list[str], predictions: Path,
                      scheme: LabelScheme | None = None,
                      with_hd95: bool = False) -> dict[str, Any] | None:
    """leafnet's evaluation of the predictions ``predictions/CASE<file_ending>`` of ``case_ids``
    against their labels, also written as ``predictions/summary.json``; None when none of the
    cases has a label. The classes scored are ``scheme``'s (a model's plans), by default the
    dataset's labels or regions."""
    description = load_dataset_json(raw_dataset)
    cases = split_cases(raw_dataset, case_ids)
    pairs = [(cases[case_id].label, predictions / f"{case_id}{description.file_ending}")
             for case_id in case_ids if cases[case_id].label is not None]
    if not pairs:
        return None
    scheme = scheme or LabelScheme.for_dataset(description.labels, description.regions)
    summary = evaluate_pairs(pairs, scheme.foreground_values, with_hd95=with_hd95,
                             classes=list(scheme.classes))
    write_summary(summary, predictions / "summary.json")
    return summary


def foreground_means(summary: dict[str, Any] | None) -> dict[str, float]:
    """A summary's foreground means (Dice, IoU; HD95 where measured); empty without one."""
    if summary is None:
        return {}
    return {key: float(value) for key, value in summary["foreground_mean"].items()}


@dataclass(frozen=True)
class ScoredPredictions:
    """What predicting cases gave: their summary (None without labels) and the seconds each
    image took to predict (reading and writing files excluded)."""

    summary: dict[str, Any] | None
    seconds: list[float]

    @property
    def means(self) -> dict[str, float]:
        """The foreground means (:func:`foreground_means`)."""
        return foreground_means(self.summary)


def predict_and_score(predictor: Segmenter, raw_dataset: Path, case_ids: list[str],
                      output: Path, seed: int, with_hd95: bool = False,
                      show_progress: bool = False) -> ScoredPredictions:
    """Predict ``case_ids`` of a raw dataset (imagesTr or imagesTs) at their original size into
    ``output/CASE<file_ending>`` and score them against their labels with the classes of the
    predictor's plans (:func:`score_predictions`). The one way every caller predicts and
    scores: training's validation and test folders, experiments and benchmarks."""
    description = load_dataset_json(raw_dataset)
    cases = split_cases(raw_dataset, case_ids)
    output.mkdir(parents=True, exist_ok=True)
    seconds = []
    for case_id in tqdm(case_ids, desc=f"predicting {output.name}", disable=not show_progress):
        image, _, properties = read_case(cases[case_id])
        started = time.perf_counter()
        label = predictor.predict([image], seed=seed)[0].label
        seconds.append(time.perf_counter() - started)
        write_label(output / f"{case_id}{description.file_ending}", label, properties[0])
    summary = score_predictions(raw_dataset, case_ids, output, predictor.plans.label_scheme,
                                with_hd95)
    return ScoredPredictions(summary, seconds)
