"""Predicting cases of a raw dataset by id (a fold's validation or test split, wherever its files
are) at their original size, and scoring them against their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_pairs, write_summary
from leafnet.imageio import write_label
from leafnet.inference.cascade import Segmenter
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


def predict_cases(predictor: Segmenter, raw_dataset: Path, case_ids: list[str],
                  output: Path, seed: int, show_progress: bool = False) -> dict[str, Any] | None:
    """Write ``output/CASE<file_ending>`` for each case (imagesTr or imagesTs) and, when the
    cases have labels, ``output/summary.json``; return that summary (None without labels)."""
    description = load_dataset_json(raw_dataset)
    cases = split_cases(raw_dataset, case_ids)
    output.mkdir(parents=True, exist_ok=True)
    pairs = []
    for case_id in tqdm(case_ids, desc=f"predicting {output.name}", disable=not show_progress):
        image, _, properties = read_case(cases[case_id])
        target = output / f"{case_id}{description.file_ending}"
        write_label(target, predictor.predict([image], seed=seed)[0].label, properties[0])
        if cases[case_id].label is not None:
            pairs.append((cases[case_id].label, target))
    if not pairs:
        return None
    scheme = predictor.plans.label_scheme
    summary = evaluate_pairs(pairs, scheme.foreground_values,
                             classes=list(scheme.classes))
    write_summary(summary, output / "summary.json")
    return summary
