"""Scoring one run on its fold's test split with N noise seeds, reusing what is still valid."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.evaluation.metrics import dice_and_iou
from leafnet.imageio import read_label
from leafnet.evaluation.seed_spread import seed_spread
from leafnet.evaluation.summary import SUMMARY_FILE, Summary
from leafnet.inference.predict_cases import LabelledCases, predict_and_score, split_cases
from leafnet.inference.two_stages import load_predictor
from leafnet.models.network import WEIGHTS_FILE, exported_model
from leafnet.raw_format import find_dataset
from leafnet.training.trainers.base import LEAFTrainer
from leafnet.utilities.digests import weights_digest
from leafnet.utilities.json_files import read_json

MODEL_FILE = "model.json"


def _model_identity(run_folder: Path, checkpoint: str) -> dict[str, Any]:
    """Which exported model the predictions came from: its weights file and their digest (the
    one the fold record holds)."""
    folder = exported_model(run_folder, checkpoint)
    return {"checkpoint": str(folder / WEIGHTS_FILE), "weights_sha256": weights_digest(folder)}


def all_foreground_reference(trainer: LEAFTrainer) -> dict[str, float] | None:
    """Dice and IoU of marking every pixel foreground on the test split: the floor a model must
    beat to have learnt more than "there is a large object" (Kvasir-SEG: Dice 23%). None when
    the test split has no labelled cases."""
    classes = trainer.plans.label_scheme.classes
    cases = split_cases(find_dataset(trainer.folder.name), trainer.split.test).values()
    labelled = [case.label for case in cases if case.label is not None]
    if not labelled:
        return None
    scores = []
    for label in labelled:
        truth = read_label(label)[0]
        everything = np.ones(truth.shape, dtype=bool)
        scores.append([dice_and_iou(everything, np.isin(truth, item.values))
                       for item in classes])
    values = np.array(scores)
    return {"Dice": float(values[..., 0].mean()), "IoU": float(values[..., 1].mean())}


def evaluate_on_test(trainer: LEAFTrainer, output: Path, seeds: list[int],
                     checkpoint: str = "best", show_progress: bool = True) -> dict[str, Any]:
    """Predict the test split into ``output/seed_S/`` for each seed and return the per-seed
    foreground means with their mean and standard deviation (ddof 1). Seeds whose summary was
    made from the same checkpoint file are not predicted again."""
    case_ids = trainer.split.test
    if not case_ids:
        raise LeafnetError(f"fold {trainer.fold} of {trainer.folder.name} has no test cases; the "
                           "tables are measured on the test split (add imagesTs/labelsTs or a "
                           "split rule with a test share, then run leafnet_plan_and_preprocess)")
    identity = _model_identity(trainer.output, checkpoint)
    model_file = output / MODEL_FILE
    if model_file.is_file() and read_json(model_file) != identity:
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(model_file, identity)
    raw = find_dataset(trainer.folder.name)
    predictor = None
    summaries = {}
    for seed in seeds:
        folder = output / f"seed_{seed}"
        if not (folder / SUMMARY_FILE).is_file():
            if predictor is None:
                predictor = load_predictor([trainer.output], checkpoint, trainer.device)
            if predict_and_score(predictor, LabelledCases.of_split(raw, case_ids), folder, seed,
                                 show_progress=show_progress).summary is None:
                raise LeafnetError(f"the test cases of {raw} have no labels (labelsTs), so the "
                                   "table cannot be scored; add them or use a split with a "
                                   "labelled test share")
        summaries[seed] = Summary.load(folder / SUMMARY_FILE, "predict it again")
    return {**seed_spread(summaries), "checkpoint": identity["checkpoint"]}
