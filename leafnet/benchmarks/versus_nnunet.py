"""``leafnet_benchmark versus-nnunet``: leafnet and its baselines trained for the same
wall-clock minutes each, on the same train/validation/test split, predicting the same test images
at their original size, scored by leafnet's evaluation (Dice, IoU, HD95), with the samples each
saw, its pace and its prediction time per image.

The rows: leafnet (its first stage, the mask autoencoder, starts from the shipped one and is
fine-tuned only until it reconstructs the training masks at the target Dice, within at most
``first_stage_share`` of the minutes; the rest trains the diffusion model); nnU-Net v2 2D with
its own plans on the raw images (its default patch); nnU-Net v2 2D on exactly the images
leafnet trains on (each image and label as leafnet's plans preprocess it: intensity window,
resized to the plans' size), its probabilities resized back to each original size as
leafnet's are; and a plain 2D U-Net (plain_unet.py) trained by leafnet's own loop on
leafnet's batches. The like-for-like question (what does a U-Net reach on the same 128 px
images in the same time?) is answered by the last two; the first answers what nnU-Net does
left to itself. nnunetv2 (which brings dynamic_network_architectures) is the optional extra
``pip install -e ".[bench]"``; rows that need it are skipped, with the reason in the report,
when it is not installed. Prediction times exclude reading and writing files and include
everything else (resizing and normalising the image, the network, resizing back; for nnU-Net on
leafnet's images the resizing to the plans' size happens when its raw copy is written and is
not timed, a few milliseconds an image); leafnet and nnU-Net are scored and timed with and
without test-time mirroring, and each method's better row decides whether leafnet leads.

Everything lives in one benchmark folder (the leafnet and U-Net runs, nnU-Net's folders, the
predictions, ``versus_nnunet.json`` and ``versus_nnunet.md``). Every row resumes: running the
same command again continues the trainings where they stopped and redoes only what is missing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.atomic import write_json
from leafnet.benchmarks.nnunet_raw_copy import write_nnunet_raw
from leafnet.benchmarks.plain_unet import PlainUNetTrainer, unet_predictor
from leafnet.benchmarks.scratch_environment import environment
from leafnet.errors import LeafnetError
from leafnet.inference.predict_cases import (
    LabelledCases,
    ScoredPredictions,
    foreground_means,
    predict_and_score,
    score_predictions,
)
from leafnet.inference.segmenter import Segmenter
from leafnet.inference.predictor import LEAFPredictor
from leafnet.models.fold_record import FoldSplit, read_fold_record
from leafnet.paths import preprocessed_root, results_root
from leafnet.planning.plans import PLANS_FILE
from leafnet.preprocessing.plans import DEFAULT_PLANS_NAME, Plans
from leafnet.raw_format import find_dataset
from leafnet.raw_format.locate import parse_dataset_id
from leafnet.training.checkpointing import FINAL
from leafnet.training.registry import find_trainer
from leafnet.training.tasks.autoencoder import FIRST_STAGE_RECORD
from leafnet.utilities.json_files import read_json
from leafnet.utilities.machine import usable_device
from leafnet.utilities.processes import STALL_MINUTES, python_main_command, run_watched

DEFAULT_TRAINER = "LEAFTrainer_x0_cpu"
FIRST_STAGE_SHARE = 0.3
VALIDATE_EVERY = 250
ROWS = ("leafnet", "unet", "nnunet", "nnunet_same_size")
NNUNET_ROWS = {"nnunet": "nnU-Net v2 2D, its own plans",
               "nnunet_same_size": "nnU-Net v2 2D, leafnet's images"}


MISSING_BENCH_EXTRA = "nnunetv2 is not installed (pip install -e \".[bench]\")"


def nnunet_available() -> bool:
    return importlib.util.find_spec("nnunetv2") is not None


def unet_available() -> bool:
    return importlib.util.find_spec("dynamic_network_architectures") is not None


def benchmark_folder(dataset_name: str, minutes: float) -> Path:
    return results_root() / "benchmarks" / f"versus_nnunet_{dataset_name}_{minutes:g}min"


def train_leafnet(dataset: str | int, minutes: float, trainer: str, first_stage: str | None,
                  first_stage_share: float, validate_every: int, device: str,
                  plans_name: str = DEFAULT_PLANS_NAME, preset: str | None = None) -> Any:
    """The first stage (from the shipped mask autoencoder, until it reconstructs the training
    masks at the target Dice, for at most ``first_stage_share`` of the minutes; a finished one
    is reused with the seconds its fold record holds; the diffusion run's record holds the
    first stage's digest, so a changed one is refused there), then the diffusion trainer for
    what the first stage left (both continue when run again), on the plans' preset unless
    ``preset``; return the diffusion trainer. Without ``first_stage``, the trainer's own."""
    first_stage = first_stage or find_trainer(trainer).first_stage
    stage = find_trainer(first_stage)(dataset, minutes=minutes * first_stage_share,
                                      validate_every=10**9, device=device,
                                      plans_name=plans_name, preset=preset)
    if not (stage.output / FINAL).is_file():
        stage.run(continue_training=True)
    record = read_fold_record(stage.output)
    first_stage_seconds = record.train_seconds
    left = minutes * 60 - first_stage_seconds
    if left <= 0:
        raise LeafnetError(f"the first stage used all of the {minutes:g} minutes; give the "
                           "benchmark more minutes or a smaller --first-stage-share")
    diffusion = find_trainer(trainer)(dataset, minutes=left / 60, first_stage=first_stage,
                                      validate_every=validate_every, device=device,
                                      plans_name=plans_name, preset=preset)
    diffusion.run(continue_training=True)
    diffusion.first_stage_seconds = first_stage_seconds
    diffusion.first_stage_steps = record.steps_done
    diffusion.ceiling = read_json(stage.output / "autoencoder" / FIRST_STAGE_RECORD).get(
        "reconstruction_dice")
    return diffusion


def predict_test_images(predictor: Segmenter, raw: Path, case_ids: list[str], output: Path,
                        seed: int) -> ScoredPredictions:
    """A row's test predictions at the original size, scored with HD95 (summary.json beside
    them), and the seconds per image."""
    return predict_and_score(predictor, LabelledCases.of_split(raw, case_ids), output, seed,
                             with_hd95=True, show_progress=True)


def score(raw: Path, case_ids: list[str], predictions: Path) -> dict[str, float]:
    """leafnet's evaluation of another program's predictions (nnU-Net's): the foreground means
    of Dice, IoU and HD95 over the dataset's labels or regions."""
    return foreground_means(score_predictions(raw, case_ids, predictions, with_hd95=True))


def _refuse_two_stages(dataset_name: str) -> None:
    """versus-nnunet trains and predicts one stage: refuse two-stage plans before any minute is
    spent, rather than report the coarse stage alone as leafnet."""
    source = preprocessed_root() / dataset_name
    plans = Plans.load(source / PLANS_FILE, "plan it first: leafnet_plan_and_preprocess -d "
                                            f"{dataset_name}")
    if plans.next_stage is not None:
        decision = plans.json.get("target_size_rule", {}).get("decision", "")
        raise LeafnetError(
            f"{source / PLANS_FILE} plans two stages ({decision or 'a crop around the structure'}"
            "), and versus-nnunet compares one-stage models. Compare the two stages with "
            "leafnet_benchmark two-stages, or plan one stage: leafnet_plan_and_preprocess -d "
            f"{dataset_name} --target-size H W")


def run_nnunet(dataset_id: int, raw: Path, minutes: float, split: FoldSplit,
               folder: Path, num_processes: int, device: str,
               mirroring_cases: int | None = None, plans: Plans | None = None,
               stall_minutes: float = STALL_MINUTES) -> dict[str, Any]:
    """One nnU-Net row in its own process (nnunetv2 reads its folders at import), in
    ``folder``: on the raw images with its own plans, or, with ``plans``, on the images as
    leafnet's plans preprocess them, its predictions mapped back to the original sizes. The
    process's output goes to ``folder/nnunet.log``; one that writes nothing for
    ``stall_minutes`` is ended (:class:`ChildStalled`)."""
    dataset_folder, sizes = write_nnunet_raw(raw, split, folder / "raw", plans)
    split_file = folder / "split.json"
    write_json(split_file, {"train": split.train, "val": split.val})
    report = folder / "report.json"
    previous = read_json(report)
    if previous is not None and previous.get("minutes") == minutes and previous.get(
            "mirroring_cases") == mirroring_cases and all(
            Path(path).is_dir() for path in previous["predictions"].values()):
        return previous
    env = {**os.environ, "nnUNet_raw": str(folder / "raw"),
           "nnUNet_preprocessed": str(folder / "preprocessed"),
           "nnUNet_results": str(folder / "results"), "nnUNet_n_proc_DA": str(num_processes)}
    command = python_main_command(
        "leafnet.benchmarks.nnunet_half", "--dataset-id", str(dataset_id), "--minutes",
        str(minutes), "--split", str(split_file), "--test-images",
        str(dataset_folder / "imagesTs"), "--output", str(folder / "predictions"), "--report",
        str(report), "-np", str(num_processes), "--device", device)
    if mirroring_cases:
        command += ["--mirroring-cases", str(mirroring_cases)]
    if plans is not None:
        write_json(folder / "original_sizes.json", sizes)
        command += ["--original-sizes", str(folder / "original_sizes.json")]
    status = run_watched(command, folder / "nnunet.log", stall_minutes * 60, env=env)
    if status != 0:
        raise LeafnetError(f"the nnU-Net run in {folder} failed (exit {status}); its output is "
                           f"in {folder / 'nnunet.log'}, its training log in "
                           f"{folder / 'results'}. Run the same command again to continue")
    numbers = json.loads(report.read_text())
    numbers["scores"] = {key: score(raw, numbers["cases"][key], Path(path))
                         for key, path in numbers["predictions"].items()}
    numbers.update(minutes=minutes, mirroring_cases=mirroring_cases)
    write_json(report, numbers)
    return numbers


def _size(size: Any) -> str:
    return f"{size[0]}x{size[1]}"


def leafnet_row(trainer: Any, seconds: list[float], scores: dict[str, float],
                mirroring: bool = False) -> dict[str, Any]:
    """leafnet's row: its single-step prediction, or with test-time mirroring (four views)."""
    steps, batch = trainer.num_steps, trainer.global_batch
    diffusion_seconds = trainer.history["train_seconds"]
    return {"method": f"leafnet {trainer.name}" + (", mirroring" if mirroring else ""),
            "leafnet": True, "input": _size(trainer.plans.target_size),
            "training": f"{trainer.first_stage_steps} first-stage + {steps} steps of batch "
                        f"{batch}",
            "train_seconds": trainer.first_stage_seconds + diffusion_seconds,
            "samples_seen": steps * batch, "seconds_per_step": diffusion_seconds / max(steps, 1),
            "seconds_per_image": float(np.median(seconds)), "scores": scores,
            "first_stage_ceiling": getattr(trainer, "ceiling", None)}


def verdict(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """leafnet's best row and the best baseline row by test Dice, each method with or without
    test-time mirroring, whichever scored higher, among the rows scored on every test image
    (``--mirroring-cases`` scores nnU-Net's mirrored rows on fewer); None without a baseline
    row."""
    every = report.get("num_test_cases")
    whole = [row for row in report["rows"] if row.get("num_cases", every) == every]
    leafnet = [row for row in whole if row.get("leafnet")] or whole[:1]
    baselines = [row for row in whole if row not in leafnet]
    if not leafnet or not baselines:
        return None
    best = max(baselines, key=lambda row: row["scores"]["Dice"])
    return max(leafnet, key=lambda row: row["scores"]["Dice"]), best


def unet_row(trainer: Any, seconds: list[float], scores: dict[str, float]) -> dict[str, Any]:
    steps, batch = trainer.num_steps, trainer.global_batch
    spent = trainer.history["train_seconds"]
    return {"method": "plain 2D U-Net (PlainConvUNet, leafnet's loop)",
            "input": _size(trainer.plans.target_size),
            "training": f"{steps} steps of batch {batch}", "train_seconds": spent,
            "samples_seen": steps * batch, "seconds_per_step": spent / max(steps, 1),
            "seconds_per_image": float(np.median(seconds)), "scores": scores}


def nnunet_rows(numbers: dict[str, Any], name: str, num_test_cases: int) -> list[dict[str, Any]]:
    """The rows of one nnU-Net run: without and with test-time mirroring."""
    iterations, batch = numbers["iterations"], numbers["batch_size"]
    rows = []
    for key, how in (("no_mirroring", "without mirroring"), ("mirroring", "mirroring")):
        cases = len(numbers["cases"][key])
        if cases != num_test_cases:
            how += f" (first {cases} test images)"
        rows.append({
            "method": f"{name}, {how}", "input": _size(numbers["input_size"]),
            "training": f"{iterations} iterations of batch {batch}, patch "
                        f"{_size(numbers['patch_size'])}",
            "train_seconds": numbers["train_seconds"], "samples_seen": iterations * batch,
            "seconds_per_step": numbers["train_seconds"] / max(iterations, 1),
            "seconds_per_image": numbers["seconds_per_image"][key],
            "scores": numbers["scores"][key], "num_cases": cases})
    return rows


def markdown_table(report: dict[str, Any]) -> str:
    """The report (with its ``machine``) as a markdown table: one row per method, with
    training, samples seen, pace, Dice, IoU, HD95 and prediction time."""
    machine = report["machine"]
    lines = [f"# leafnet against nnU-Net v2 2D and a plain U-Net, {report['dataset']}, "
             f"{report['minutes']:g} minutes of training each, all on "
             f"{report.get('device', 'cpu')}",
             "",
             f"Test set: {report['num_test_cases']} images at original size, scored by "
             f"leafnet's evaluation. Machine: {machine['processor']}, {machine['cpu_count']} "
             f"cores, GPU: {machine['gpu'] or 'none'}, torch {machine['torch']}.",
             "",
             "| method | input | training | min | samples seen | s / step | test Dice | "
             "test IoU | HD95 (px) | s / image |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        scores = row["scores"]
        lines.append(
            f"| {row['method']} | {row['input']} | {row['training']} | "
            f"{row['train_seconds'] / 60:.1f} | {row['samples_seen']} | "
            f"{row['seconds_per_step']:.2f} | {scores['Dice']:.3f} | {scores['IoU']:.3f} | "
            f"{scores.get('HD95', float('nan')):.1f} | {row['seconds_per_image']:.3f} |")
    for skipped, reason in report["skipped"].items():
        shown = reason if reason.startswith("failed:") else f"skipped: {reason}"
        lines.append(f"| {skipped} | {shown} | | | | | | | | |")
    decided = verdict(report)
    if decided is not None:
        leaf, best = decided
        lead = leaf["scores"]["Dice"] > best["scores"]["Dice"]
        lines += ["", f"leafnet {'leads' if lead else 'does not lead'}: test Dice "
                  f"{leaf['scores']['Dice']:.3f} ({leaf['method']}) against the best "
                  f"baseline's {best['scores']['Dice']:.3f} ({best['method']})."]
    ceiling = report["rows"][0].get("first_stage_ceiling") if report["rows"] else None
    if ceiling:
        lines += ["", "leafnet's first stage reconstructs the training masks at Dice "
                  + ", ".join(f"{name} {value:.3f}" for name, value in ceiling.items())
                  + " at the plans' size: the most its predictions can score there."]
    return "\n".join(lines) + "\n"


def benchmark_versus_nnunet(dataset: str | int, minutes: float, *,
                            trainer: str = DEFAULT_TRAINER,
                            first_stage: str | None = None,
                            first_stage_share: float = FIRST_STAGE_SHARE,
                            validate_every: int = VALIDATE_EVERY, rows: tuple[str, ...] = ROWS,
                            num_processes: int = 2, mirroring_cases: int | None = None,
                            folder: Path | None = None, device: str | None = None,
                            stall_minutes: float = STALL_MINUTES) -> dict[str, Any]:
    """Train and score every row on the same ``device`` (default: leafnet's, the GPU when
    there is one) for the same minutes: leafnet (always); of ``rows``, a plain U-Net in leafnet's
    loop (``unet``), nnU-Net on the raw images with its own plans (``nnunet``) and nnU-Net on
    the images leafnet sees (``nnunet_same_size``). Return the report. An nnU-Net row whose
    process fails, or writes nothing for ``stall_minutes`` (it is ended), is reported failed
    with the reason; the other rows and the table are still made."""
    device = usable_device(device)
    if not math.isfinite(minutes) or minutes <= 0:
        raise LeafnetError(f"--minutes must be a positive number, got {minutes}")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise LeafnetError(f"--rows: unknown row(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(ROWS)}")
    if not 0 < first_stage_share < 1:
        raise LeafnetError(f"--first-stage-share must be between 0 and 1, got "
                           f"{first_stage_share}")
    raw = find_dataset(dataset)
    _refuse_two_stages(raw.name)
    folder = folder or benchmark_folder(raw.name, minutes)
    folder.mkdir(parents=True, exist_ok=True)
    table: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with environment(LEAFNET_RESULTS=str(folder / "leafnet_results")):
        diffusion = train_leafnet(dataset, minutes, trainer, first_stage, first_stage_share,
                                  validate_every, device)
        split, plans = diffusion.split, diffusion.plans
        if not split.test:
            raise LeafnetError(f"{raw.name} has no test cases in its split; versus-nnunet scores "
                               "the test set (add imagesTs/labelsTs or a test fraction)")
        output = folder / "leafnet_predictions"
        scored = predict_test_images(LEAFPredictor.from_folder(diffusion.output, "best", device),
                                     raw, split.test, output, diffusion.seed)
        table.append(leafnet_row(diffusion, scored.seconds, scored.means))
        output = folder / "leafnet_mirroring_predictions"
        scored = predict_test_images(LEAFPredictor.from_folder(diffusion.output, "best", device,
                                                               mirroring=True),
                                     raw, split.test, output, diffusion.seed)
        table.append(leafnet_row(diffusion, scored.seconds, scored.means, True))
        if "unet" not in rows:
            skipped["plain 2D U-Net"] = "not in --rows"
        elif unet_available():
            unet = PlainUNetTrainer(dataset, minutes=minutes, validate_every=validate_every,
                                    device=device)
            unet.run(continue_training=True)
            output = folder / "unet_predictions"
            scored = predict_test_images(unet_predictor(unet.output, device), raw,
                                         split.test, output, unet.seed)
            table.append(unet_row(unet, scored.seconds, scored.means))
        else:
            skipped["plain 2D U-Net"] = MISSING_BENCH_EXTRA
    for key, name in NNUNET_ROWS.items():
        if key not in rows or not nnunet_available():
            skipped[name] = "not in --rows" if key not in rows else MISSING_BENCH_EXTRA
            continue
        try:
            numbers = run_nnunet(parse_dataset_id(dataset), raw, minutes, split, folder / key,
                                 num_processes, device, mirroring_cases,
                                 plans if key == "nnunet_same_size" else None, stall_minutes)
        except LeafnetError as error:  # stalled, or its process failed: the rest still count
            skipped[name] = f"failed: {error}"
            continue
        table += nnunet_rows(numbers, name, len(split.test))
    return {"dataset": raw.name, "minutes": minutes, "device": device,
            "num_test_cases": len(split.test), "plans_target_size": list(plans.target_size),
            "rows": table, "skipped": skipped}
