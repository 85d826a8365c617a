"""Predicting cases with reference labels (a fold's validation or test split, wherever its files
are, or a folder of images beside a folder of masks) at their original size, and scoring the
predictions against the references."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_pairs, mask_files
from leafnet.evaluation.summary import SUMMARY_FILE, Summary
from leafnet.imageio import write_label
from leafnet.inference.predict_folder import input_cases
from leafnet.inference.segmenter import Segmenter
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.raw_format import (
    CaseFiles,
    DatasetDescription,
    dataset_cases,
    load_dataset_json,
    read_case,
)


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


@dataclass(frozen=True)
class LabelledCases:
    """Cases to predict and score: each case's image files and reference label (None where
    there is none), and the file ending the predictions are written with."""

    cases: dict[str, CaseFiles]
    file_ending: str
    dataset: DatasetDescription | None = None

    @classmethod
    def of_split(cls, raw_dataset: Path, case_ids: list[str]) -> LabelledCases:
        """``case_ids`` of a raw dataset (imagesTr or imagesTs, labelsTr or labelsTs)."""
        description = load_dataset_json(raw_dataset)
        return cls(split_cases(raw_dataset, case_ids), description.file_ending, description)

    @classmethod
    def of_folders(cls, images: Path, reference: Path, num_channels: int) -> LabelledCases:
        """The images of a folder (named as leafnet_predict reads them) and their reference
        masks in another, paired by case name; a case missing on either side is an error."""
        inputs = input_cases(images, num_channels)
        masks = mask_files(reference)
        unpaired = sorted({case.case_id for case in inputs} ^ set(masks))
        if unpaired:
            raise LeafnetError(f"{len(unpaired)} case(s) are in only one of {images} and "
                               f"{reference} (e.g. {unpaired[:5]}); every image needs its "
                               "reference mask of the same name, and every mask its image")
        endings = {case.output_ending for case in inputs}
        return cls({case.case_id: CaseFiles(case.case_id, case.files, masks[case.case_id])
                    for case in inputs}, endings.pop() if len(endings) == 1 else ".png")


def score_predictions(raw_dataset: Path, case_ids: list[str], predictions: Path,
                      scheme: LabelScheme | None = None,
                      with_hd95: bool = False) -> Summary | None:
    """leafnet's evaluation of the predictions ``predictions/CASE<file_ending>`` of ``case_ids``
    against their labels, also written as ``predictions/summary.json``; None when none of the
    cases has a label. The classes scored are ``scheme``'s (a model's plans), by default the
    dataset's labels or regions."""
    description = load_dataset_json(raw_dataset)
    cases = split_cases(raw_dataset, case_ids)
    pairs = [(cases[case_id].label, predictions / f"{case_id}{description.file_ending}")
             for case_id in case_ids if cases[case_id].label is not None]
    scheme = scheme or LabelScheme.for_dataset(description.labels, description.regions)
    return _score(pairs, scheme, with_hd95, predictions, description)


def _score(pairs: list[tuple[Path, Path]], scheme: LabelScheme, with_hd95: bool,
           folder: Path, dataset: DatasetDescription | None) -> Summary | None:
    """The evaluation of (reference, prediction) ``pairs`` with ``scheme``'s classes (the
    references read by ``dataset``'s recorded rule), written as ``folder/summary.json``; None
    without pairs."""
    if not pairs:
        return None
    summary = evaluate_pairs(pairs, scheme.foreground_values, with_hd95=with_hd95,
                             classes=list(scheme.classes), dataset=dataset)
    summary.save(folder / SUMMARY_FILE)
    return summary


def foreground_means(summary: Summary | None) -> dict[str, float]:
    """A summary's foreground means (Dice, IoU; HD95 where measured); empty without one."""
    return {} if summary is None else dict(summary.foreground_mean)


@dataclass(frozen=True)
class ScoredPredictions:
    """What predicting cases gave: their summary (None without labels) and the seconds each
    image took to predict (reading and writing files excluded)."""

    summary: Summary | None
    seconds: list[float]

    @property
    def means(self) -> dict[str, float]:
        """The foreground means (:func:`foreground_means`)."""
        return foreground_means(self.summary)


def predict_and_score(predictor: Segmenter, cases: LabelledCases, output: Path, seed: int,
                      with_hd95: bool = False, show_progress: bool = False) -> ScoredPredictions:
    """Predict ``cases`` at their original size into ``output/CASE<file_ending>`` and score
    the labelled ones against their references with the classes of the predictor's plans
    (``output/summary.json``). The one way every caller predicts and scores: training's
    validation and test folders, the experiments, seed stability and the benchmarks."""
    output.mkdir(parents=True, exist_ok=True)
    seconds, pairs = [], []
    for case_id, case in tqdm(cases.cases.items(), desc=f"predicting {output.name}",
                              disable=not show_progress):
        image, _, properties = read_case(case)
        started = time.perf_counter()
        label = predictor.predict([image], seed=seed)[0].label
        seconds.append(time.perf_counter() - started)
        written = output / f"{case_id}{cases.file_ending}"
        write_label(written, label, properties[0])
        if case.label is not None:
            pairs.append((case.label, written))
    return ScoredPredictions(_score(pairs, predictor.plans.label_scheme, with_hd95, output,
                                    cases.dataset), seconds)
