"""``leafnet_benchmark versus-nnunet``: leafnet and nnU-Net v2 2D trained for the same wall-clock
minutes each, on the same train/validation/test split, predicting the same test images at their
original size, scored by leafnet's evaluation, with the prediction time per image of each.

leafnet's minutes include its first stage (the mask autoencoder), which gets
``first_stage_share`` of them. nnU-Net uses its default plans and 2D configuration and the
budget trainer of ``nnunet_half``; nnunetv2 is an optional extra (``pip install -e ".[bench]"``)
and its half is skipped, with the reason in the report, when it is not installed. Prediction
times exclude reading and writing files and include everything else (resizing and normalising
the image, the network, resizing back); nnU-Net is timed with and without test-time mirroring.

Everything lives in one benchmark folder (leafnet's runs, nnU-Net's folders, the predictions,
``versus_nnunet.json`` and ``versus_nnunet.md``). Both halves resume: running the same command
again continues the trainings where they stopped and redoes only what is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from leafnet.atomic import write_json
from leafnet.benchmarks.scratch_environment import environment
from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_pairs, write_summary
from leafnet.imageio import read_image, write_image, write_label
from leafnet.inference.predict_cases import split_cases
from leafnet.inference.predictor import LEAFPredictor
from leafnet.paths import results_root
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.raw_format import find_dataset, load_dataset_json, read_case
from leafnet.raw_format.locate import parse_dataset_id
from leafnet.training.registry import find_trainer
from leafnet.utilities.machine import default_device

DEFAULT_TRAINER = "LEAFTrainer_x0_cpu"
DEFAULT_FIRST_STAGE = "LEAFAutoencoderTrainer_cpu"
FIRST_STAGE_SHARE = 0.15
VALIDATE_EVERY = 250


def nnunet_available() -> bool:
    return importlib.util.find_spec("nnunetv2") is not None


def benchmark_folder(dataset_name: str, minutes: float) -> Path:
    return results_root() / "benchmarks" / f"versus_nnunet_{dataset_name}_{minutes:g}min"


def _place(source: Path, target: Path, ending: str) -> None:
    """Link ``source`` as ``target``, or re-encode it when nnU-Net needs another file type
    (leafnet reads JPEG images; nnU-Net's 2D reader takes PNG): the pixels leafnet reads."""
    if target.exists():
        return
    if source.name.endswith(ending):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return
    image, properties = read_image(source)
    write_image(target, image, properties)


def write_nnunet_raw(raw: Path, split: dict[str, list[str]], root: Path) -> Path:
    """nnU-Net's raw copy of ``raw``: train and validation cases in imagesTr/labelsTr, the test
    cases in imagesTs (what is predicted), one dataset.json; return the dataset folder."""
    description = load_dataset_json(raw)
    ending = description.file_ending
    folder = root / raw.name
    cases = split_cases(raw, split["train"] + split["val"] + split["test"])
    for subset, ids in (("Tr", split["train"] + split["val"]), ("Ts", split["test"])):
        (folder / f"images{subset}").mkdir(parents=True, exist_ok=True)
        if subset == "Tr":
            (folder / "labelsTr").mkdir(exist_ok=True)
        for case_id in tqdm(ids, desc=f"nnU-Net raw copy, images{subset}"):
            for channel, image in enumerate(cases[case_id].images):
                _place(image, folder / f"images{subset}" / f"{case_id}_{channel:04d}{ending}",
                       ending)
            if subset == "Tr":
                _place(cases[case_id].label, folder / "labelsTr" / f"{case_id}{ending}", ending)
    written = description.to_json()
    write_json(folder / "dataset.json", {
        "channel_names": description.channel_names, "labels": written["labels"],
        "numTraining": len(split["train"]) + len(split["val"]), "file_ending": ending,
        **{key: written[key] for key in ("regions_class_order",) if key in written}})
    return folder


def train_leafnet(dataset: str | int, minutes: float, trainer: str, first_stage: str,
                  first_stage_share: float, validate_every: int, device: str) -> Any:
    """The first stage for its share of the minutes, then the diffusion trainer for what the
    first stage left (both continue when run again); return the diffusion trainer."""
    stage = find_trainer(first_stage)(dataset, minutes=minutes * first_stage_share,
                                      validate_every=10**9, device=device)
    stage.run(continue_training=True)
    left = minutes * 60 - stage.history["train_seconds"]
    if left <= 0:
        raise LeafnetError(f"the first stage used all of the {minutes:g} minutes; give "
                           "versus-nnunet more minutes or a smaller --first-stage-share")
    diffusion = find_trainer(trainer)(dataset, minutes=left / 60, first_stage=first_stage,
                                      validate_every=validate_every, device=device)
    diffusion.run(continue_training=True)
    diffusion.first_stage_seconds = stage.history["train_seconds"]
    diffusion.first_stage_steps = stage.num_steps
    return diffusion


def predict_leafnet(trainer: Any, raw: Path, case_ids: list[str],
                    output: Path) -> list[float]:
    """The best model's test predictions at original size; seconds per image, file IO
    excluded."""
    predictor = LEAFPredictor.from_folder(trainer.output, "best", trainer.device)
    description = load_dataset_json(raw)
    cases = split_cases(raw, case_ids)
    output.mkdir(parents=True, exist_ok=True)
    seconds = []
    for case_id in tqdm(case_ids, desc="leafnet predicting the test images"):
        image, _, properties = read_case(cases[case_id])
        started = time.perf_counter()
        label = predictor.predict([image], seed=trainer.seed)[0].label
        seconds.append(time.perf_counter() - started)
        write_label(output / f"{case_id}{description.file_ending}", label, properties[0])
    return seconds


def score(raw: Path, case_ids: list[str], predictions: Path) -> dict[str, float]:
    """leafnet's evaluation of one prediction folder (summary.json beside the masks): every
    label, or every region of a region dataset, and their mean."""
    description = load_dataset_json(raw)
    cases = split_cases(raw, case_ids)
    pairs = [(cases[case_id].label, predictions / f"{case_id}{description.file_ending}")
             for case_id in case_ids]
    scheme = LabelScheme.for_dataset(description.labels, description.regions)
    summary = evaluate_pairs(pairs, scheme.foreground_values,
                             classes=list(scheme.classes))
    write_summary(summary, predictions / "summary.json")
    return {key: float(value) for key, value in summary["foreground_mean"].items()}


def run_nnunet(dataset_id: int, raw: Path, minutes: float, split: dict[str, list[str]],
               folder: Path, num_processes: int, device: str,
               mirroring_cases: int | None = None) -> dict[str, Any]:
    """The nnU-Net half in its own process (nnunetv2 reads its folders at import)."""
    nnunet = folder / "nnunet"
    dataset_folder = write_nnunet_raw(raw, split, nnunet / "raw")
    split_file = nnunet / "split.json"
    write_json(split_file, {"train": split["train"], "val": split["val"]})
    report = nnunet / "report.json"
    env = {**os.environ, "nnUNet_raw": str(nnunet / "raw"),
           "nnUNet_preprocessed": str(nnunet / "preprocessed"),
           "nnUNet_results": str(nnunet / "results"), "nnUNet_n_proc_DA": str(num_processes)}
    command = [sys.executable, "-m", "leafnet.benchmarks.nnunet_half",
               "--dataset-id", str(dataset_id), "--minutes", str(minutes),
               "--split", str(split_file), "--test-images", str(dataset_folder / "imagesTs"),
               "--output", str(nnunet / "predictions"), "--report", str(report),
               "-np", str(num_processes), "--device", device]
    if mirroring_cases:
        command += ["--mirroring-cases", str(mirroring_cases)]
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise LeafnetError(f"the nnU-Net half failed (exit {result.returncode}); its log is in "
                           f"{nnunet / 'results'}. Run the same command again to continue")
    numbers = json.loads(report.read_text())
    numbers["scores"] = {key: score(raw, numbers["cases"][key], Path(path))
                         for key, path in numbers["predictions"].items()}
    return numbers


def markdown_table(report: dict[str, Any]) -> str:
    """The report (with its ``machine``) as a markdown table: Dice, IoU, training and
    prediction time, ratios."""
    leaf, nnunet, machine = report["leafnet"], report["nnunet"], report["machine"]
    lines = [f"# leafnet vs nnU-Net v2 2D, {report['dataset']}, {report['minutes']:g} minutes "
             f"of training each, both on {report.get('device', 'cpu')}",
             "",
             f"Test set: {report['num_test_cases']} images at original size, scored by "
             f"leafnet's evaluation. Machine: {machine['processor']}, {machine['cpu_count']} "
             f"cores, GPU: {machine['gpu'] or 'none'}, torch {machine['torch']}.",
             "",
             "| method | training | test Dice | test IoU | s / image |",
             "|---|---|---|---|---|"]
    lines.append(
        f"| leafnet {leaf['trainer']} | {leaf['first_stage_steps']} first-stage + "
        f"{leaf['steps']} steps, {leaf['train_seconds'] / 60:.1f} min | "
        f"{leaf['scores']['Dice']:.3f} | {leaf['scores']['IoU']:.3f} | "
        f"{leaf['seconds_per_image']:.3f} |")
    if "skipped" in nnunet:
        lines.append(f"| nnU-Net v2 2D | skipped: {nnunet['skipped']} | | | |")
    else:
        for key, name in (("no_mirroring", "without mirroring"), ("mirroring", "mirroring")):
            cases = len(nnunet["cases"][key])
            if cases != report["num_test_cases"]:
                name += f" (first {cases} test images)"
            scores = nnunet["scores"][key]
            lines.append(
                f"| nnU-Net v2 2D, {name} | {nnunet['iterations']} iterations of batch "
                f"{nnunet['batch_size']}, patch {nnunet['patch_size'][0]}x"
                f"{nnunet['patch_size'][1]}, {nnunet['train_seconds'] / 60:.1f} min | "
                f"{scores['Dice']:.3f} | {scores['IoU']:.3f} | "
                f"{nnunet['seconds_per_image'][key]:.3f} |")
        ratios = report["ratios"]
        lines += ["", f"leafnet / nnU-Net: test Dice {ratios['dice_vs_no_mirroring']:.2f}x "
                  f"(without mirroring, same images), prediction time per image "
                  f"{ratios['seconds_per_image_vs_no_mirroring']:.2f}x without and "
                  f"{ratios['seconds_per_image_vs_mirroring']:.2f}x with mirroring."]
    return "\n".join(lines) + "\n"


def benchmark_versus_nnunet(dataset: str | int, minutes: float, *,
                            trainer: str = DEFAULT_TRAINER,
                            first_stage: str = DEFAULT_FIRST_STAGE,
                            first_stage_share: float = FIRST_STAGE_SHARE,
                            validate_every: int = VALIDATE_EVERY, skip_nnunet: bool = False,
                            num_processes: int = 2, mirroring_cases: int | None = None,
                            folder: Path | None = None,
                            device: str | None = None) -> dict[str, Any]:
    """Train and score both on the same ``device`` (default: leafnet's, the GPU when there is
    one); write ``versus_nnunet.json`` and ``.md`` in the benchmark folder and return the
    report."""
    device = device or default_device()
    if minutes <= 0:
        raise LeafnetError(f"--minutes must be positive, got {minutes}")
    if not 0 < first_stage_share < 1:
        raise LeafnetError(f"--first-stage-share must be between 0 and 1, got "
                           f"{first_stage_share}")
    raw = find_dataset(dataset)
    folder = folder or benchmark_folder(raw.name, minutes)
    folder.mkdir(parents=True, exist_ok=True)
    with environment(LEAFNET_RESULTS=str(folder / "leafnet_results")):
        diffusion = train_leafnet(dataset, minutes, trainer, first_stage, first_stage_share,
                                  validate_every, device)
        split = dict(diffusion.split)
        if not split["test"]:
            raise LeafnetError(f"{raw.name} has no test cases in its split; versus-nnunet scores "
                               "the test set (add imagesTs/labelsTs or a test fraction)")
        seconds = predict_leafnet(diffusion, raw, split["test"], folder / "leafnet_predictions")
    leaf = {"trainer": trainer, "first_stage": first_stage,
            "first_stage_steps": diffusion.first_stage_steps, "steps": diffusion.num_steps,
            "train_seconds": diffusion.first_stage_seconds + diffusion.history["train_seconds"],
            "seconds_per_image": float(np.median(seconds)),
            "scores": score(raw, split["test"], folder / "leafnet_predictions")}
    if skip_nnunet:
        nnunet: dict[str, Any] = {"skipped": "--skip-nnunet was given"}
    elif not nnunet_available():
        nnunet = {"skipped": "nnunetv2 is not installed (pip install -e \".[bench]\")"}
    else:
        nnunet = run_nnunet(parse_dataset_id(dataset), raw, minutes, split, folder,
                            num_processes, device, mirroring_cases)
    report: dict[str, Any] = {"dataset": raw.name, "minutes": minutes, "device": device,
                              "num_test_cases": len(split["test"]),
                              "leafnet": leaf, "nnunet": nnunet}
    if "skipped" not in nnunet:
        report["ratios"] = {
            "dice_vs_no_mirroring":
                leaf["scores"]["Dice"] / max(nnunet["scores"]["no_mirroring"]["Dice"], 1e-9),
            "seconds_per_image_vs_mirroring":
                leaf["seconds_per_image"] / nnunet["seconds_per_image"]["mirroring"],
            "seconds_per_image_vs_no_mirroring":
                leaf["seconds_per_image"] / nnunet["seconds_per_image"]["no_mirroring"]}
    return report
