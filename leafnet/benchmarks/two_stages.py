"""``leafnet_benchmark two-stages``: do two-stage plans keep a small structure as well as images
cropped around it by hand, in the same minutes?

For a dataset that planning gave two stages (planning/stages.py), three rows on the same split
and test images, each trained for the same wall-clock minutes with leafnet's recipe (mask
autoencoder included):

- ``two stages``: the coarse stage for ``coarse_share`` of the minutes, the crop stage for the
  rest; predicted on the whole test images (the coarse stage finds the crop), scored at
  original size.
- ``hand-cropped``: one crop stage for all the minutes, predicted on the test images cropped
  around the reference's foreground (what a person cropping by hand gives it), scored on those
  crops. The bound the two stages can reach when localisation is perfect.
- ``one stage``: the whole image at the size the one-stage rule would take (target_size.py),
  planned into the benchmark folder; what the two stages replace.

The table gives each trained class's Dice (the smallest one is what the plans were made for),
the mean Dice and HD95 and the prediction time per image. Everything resumes like
versus-nnunet: running the command again continues the trainings and redoes what is missing.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from leafnet.benchmarks.scratch_environment import environment
from leafnet.benchmarks.versus_nnunet import predict_test_images, train_leafnet
from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_pairs
from leafnet.evaluation.summary import SUMMARY_FILE, Summary
from leafnet.imageio import write_label
from leafnet.inference.two_stages import load_predictor
from leafnet.inference.predict_cases import foreground_means, split_cases
from leafnet.inference.predictor import LEAFPredictor
from leafnet.models.presets import PRESETS
from leafnet.paths import preprocessed_root, results_root
from leafnet.planning.plan_and_preprocess import FINGERPRINT_FILE, plan_and_preprocess
from leafnet.planning.plans import PLANS_FILE, SPLITS_FILE, plans_file
from leafnet.planning.target_size import choose_target_size
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.roi_crop import crop, roi_crop_box
from leafnet.raw_format import find_dataset, read_case
from leafnet.utilities.json_files import read_json

ROWS = ("hand_cropped", "one_stage")
COARSE_SHARE = 0.3
FIRST_STAGE_SHARE = 0.3
GOAL_POINTS = 0.05


def two_stages_benchmark_folder(dataset_name: str, minutes: float) -> Path:
    return results_root() / "benchmarks" / f"two_stages_{dataset_name}_{minutes:g}min"


def _scores(summary: Summary | None, scheme: LabelScheme) -> dict[str, Any]:
    """Each trained class's Dice, IoU and HD95 and their mean."""
    if summary is None:
        raise LeafnetError("the test cases have no labels to score")
    return {"classes": {item.name: summary.mean[item.key] for item in scheme.classes},
            "mean": foreground_means(summary)}


def predict_hand_cropped(predictor: LEAFPredictor, raw: Path, case_ids: list[str],
                         output: Path, seed: int) -> tuple[list[float], dict[str, Any]]:
    """Predict each test image cropped around its reference's foreground (the crop the crop
    stage trains on) and score the crops; seconds per image, file IO excluded."""
    link = predictor.plans.previous_stage
    assert link is not None
    cases = split_cases(raw, case_ids)
    references = output / "reference_crops"
    references.mkdir(parents=True, exist_ok=True)
    seconds, pairs = [], []
    for case_id in tqdm(case_ids, desc="hand-cropped predicting the test crops"):
        image, label, properties = read_case(cases[case_id])
        if label is None:
            raise LeafnetError(f"test case {case_id} has no label to crop around")
        box = roi_crop_box(label, link.margin)
        started = time.perf_counter()
        predicted = predictor.predict([crop(image, box)], seed=seed)[0].label
        seconds.append(time.perf_counter() - started)
        write_label(references / f"{case_id}.png", crop(label, box), properties[0])
        write_label(output / f"{case_id}.png", predicted, properties[0])
        pairs.append((references / f"{case_id}.png", output / f"{case_id}.png"))
    scheme = predictor.plans.label_scheme
    summary = evaluate_pairs(pairs, scheme.foreground_values, with_hd95=True,
                             classes=list(scheme.classes))
    summary.save(output / SUMMARY_FILE)
    return seconds, _scores(summary, scheme)


def _size(plans: Plans) -> str:
    return f"{plans.target_size[0]}x{plans.target_size[1]}"


def _row(key: str, method: str, size: str, trainers: list[Any], seconds: list[float],
         scores: dict[str, Any]) -> dict[str, Any]:
    steps = " + ".join(f"{t.first_stage_steps} mask autoencoder + {t.num_steps} steps "
                       f"({t.plans.plans_name})" for t in trainers)
    spent = sum(t.first_stage_seconds + t.history["train_seconds"] for t in trainers)
    return {"key": key, "method": method, "input": size, "training": steps, "train_seconds": spent,
            "seconds_per_image": float(np.median(seconds)), "scores": scores}


def _one_stage(dataset: str | int, raw: Path, coarse: Plans, folder: Path) -> Path:
    """Plan the dataset as one stage at the size the one-stage rule takes, in the benchmark
    folder, with the same splits; return that preprocessed root."""
    source = preprocessed_root() / raw.name
    fingerprint = read_json(source / FINGERPRINT_FILE, "plan the dataset first")
    size = choose_target_size(fingerprint, coarse.label_scheme,
                              PRESETS[coarse.preset].target_size).target_size
    root = folder / "one_stage_preprocessed"
    (root / raw.name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / SPLITS_FILE, root / raw.name / SPLITS_FILE)
    plan_and_preprocess(dataset, preset=coarse.preset, target_size=size, output_root=root,
                        label_names=[item.name for item in coarse.label_scheme.classes])
    return root


def benchmark_two_stages(dataset: str | int, minutes: float, *, trainer: str,
                       first_stage: str | None,
                       first_stage_share: float, validate_every: int,
                       coarse_share: float = COARSE_SHARE, rows: tuple[str, ...] = ROWS,
                       folder: Path | None = None, device: str = "cpu",
                       preset: str | None = None) -> dict[str, Any]:
    """Train, predict and score the rows (see the module); return the report."""
    if not math.isfinite(minutes) or minutes <= 0:
        raise LeafnetError(f"--minutes must be a positive number, got {minutes}")
    if not 0 < coarse_share < 1:
        raise LeafnetError(f"--coarse-share must be between 0 and 1, got {coarse_share}")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise LeafnetError(f"--rows: unknown row(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(ROWS)}")
    raw = find_dataset(dataset)
    source = preprocessed_root() / raw.name
    coarse = Plans.load(source / PLANS_FILE, f"plan it first: leafnet_plan_and_preprocess -d "
                                             f"{dataset}")
    if coarse.next_stage is None:
        raise LeafnetError(f"{source / PLANS_FILE} plans one stage "
                           f"({coarse.json.get('target_size_rule', {}).get('decision', '')}); "
                           "two-stages compares two-stage plans with hand-cropped images")
    crop_stage = Plans.load(source / plans_file(coarse.next_stage.plans), "plan it again: "
                            f"leafnet_plan_and_preprocess -d {dataset}")
    folder = folder or two_stages_benchmark_folder(raw.name, minutes)
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(trainer=trainer, first_stage=first_stage,
                   first_stage_share=first_stage_share, validate_every=validate_every,
                   device=device, preset=preset)
    table = []
    with environment(LEAFNET_RESULTS=str(folder / "two_stages")):
        first = train_leafnet(dataset, minutes * coarse_share, plans_name=coarse.plans_name,
                              **options)
        second = train_leafnet(dataset, minutes * (1 - coarse_share),
                               plans_name=crop_stage.plans_name, **options)
        split = second.split
        if not split.test:
            raise LeafnetError(f"{raw.name} has no test cases in its split")
        output = folder / "two_stages_predictions"
        scored = predict_test_images(load_predictor([second.output], "best", device), raw,
                                     split.test, output, second.seed)
        table.append(_row("two_stages", "leafnet, two stages (whole image, then the crop it "
                          "finds)", f"{_size(coarse)} whole, {_size(crop_stage)} crop",
                          [first, second], scored.seconds,
                          _scores(scored.summary, crop_stage.label_scheme)))
    if "hand_cropped" in rows:
        with environment(LEAFNET_RESULTS=str(folder / "hand_cropped")):
            model = train_leafnet(dataset, minutes, plans_name=crop_stage.plans_name, **options)
            seconds, scores = predict_hand_cropped(
                LEAFPredictor.from_folder(model.output, "best", device), raw, split.test,
                folder / "hand_cropped_predictions", model.seed)
            table.append(_row("hand_cropped", "leafnet, images cropped around the reference "
                              "by hand", f"{_size(crop_stage)} crop", [model], seconds, scores))
    if "one_stage" in rows:
        root = _one_stage(dataset, raw, coarse, folder)
        with environment(LEAFNET_PREPROCESSED=str(root),
                         LEAFNET_RESULTS=str(folder / "one_stage")):
            model = train_leafnet(dataset, minutes, **options)
            output = folder / "one_stage_predictions"
            scored = predict_test_images(LEAFPredictor.from_folder(model.output, "best", device),
                                         raw, split.test, output, model.seed)
            table.append(_row("one_stage", "leafnet, one stage (whole image)",
                              f"{_size(model.plans)} whole", [model], scored.seconds,
                              _scores(scored.summary, model.plans.label_scheme)))
    return {"dataset": raw.name, "minutes": minutes, "coarse_share": coarse_share,
            "device": device, "num_test_cases": len(split.test),
            "smallest_class": coarse.json["target_size_rule"].get("smallest_class"),
            "rows": table}


def two_stages_markdown_table(report: dict[str, Any]) -> str:
    """The report as a markdown table with every class's Dice, and the goal's verdict: the
    smallest class's Dice of the two stages within 5 points of the hand-cropped one."""
    machine = report["machine"]
    rows = report["rows"]
    classes = list(rows[0]["scores"]["classes"])
    lines = [f"# Two-stage plans against hand-cropped images, {report['dataset']}, "
             f"{report['minutes']:g} minutes of training each, on {report['device']}", "",
             f"Test set: {report['num_test_cases']} images. Machine: {machine['processor']}, "
             f"{machine['cpu_count']} cores, GPU: {machine['gpu'] or 'none'}, torch "
             f"{machine['torch']}. Two stages: the coarse stage gets "
             f"{report['coarse_share']:.0%} of the minutes.", "",
             "| method | input | training | min | "
             + " | ".join(f"{name} Dice" for name in classes)
             + " | mean Dice | mean HD95 (px) | s / image |",
             "|---|---|---|---|" + "---|" * (len(classes) + 3)]
    for row in rows:
        scores = row["scores"]
        lines.append(f"| {row['method']} | {row['input']} | {row['training']} | "
                     f"{row['train_seconds'] / 60:.1f} | "
                     + " | ".join(f"{scores['classes'][name]['Dice']:.3f}" for name in classes)
                     + f" | {scores['mean']['Dice']:.3f} | "
                     f"{scores['mean'].get('HD95', float('nan')):.1f} | "
                     f"{row['seconds_per_image']:.3f} |")
    smallest = report.get("smallest_class")
    by_key = {row["key"]: row for row in rows}
    if smallest in classes and "hand_cropped" in by_key:
        two = by_key["two_stages"]["scores"]["classes"][smallest]["Dice"]
        hand = by_key["hand_cropped"]["scores"]["classes"][smallest]["Dice"]
        verdict = "within" if hand - two <= GOAL_POINTS else "not within"
        lines += ["", f"{smallest} Dice: two stages {two:.3f}, hand-cropped {hand:.3f}: "
                  f"{verdict} {GOAL_POINTS * 100:.0f} points."]
    return "\n".join(lines) + "\n"
