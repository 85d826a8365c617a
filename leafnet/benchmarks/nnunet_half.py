"""The nnU-Net half of ``leafnet_benchmark versus-nnunet``: nnU-Net v2's default 2D
configuration planned, trained for a wall-clock budget and timed predicting the test images.

It runs in a process of its own (``utilities.processes.python_main_command``) because nnunetv2
reads its folders from the environment when it is imported. The budget trainer below is
nnU-Net's default trainer with short epochs; after every epoch it records the training time
spent (over all sittings, in ``budget.json``) and fits the poly LR schedule to the epochs
expected to fit in the rest of the budget; after every iteration it checks the budget (an epoch
of the default 2D configuration can take minutes on a CPU) and, once it is spent, stops and
saves ``checkpoint_final.pth`` as nnU-Net does at the end of a run. A run that was interrupted
continues from ``checkpoint_latest.pth`` (saved every epoch).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
    DatasetFingerprintExtractor,
)
from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprint_dataset,
    plan_experiments,
    preprocess,
)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization
from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import (
    get_normalization_scheme,
)
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from leafnet.atomic import write_json
from leafnet.preprocessing import resize_probabilities
from leafnet.utilities.processes import exit_on_sigterm

ITERATIONS_PER_EPOCH = 20
VALIDATION_ITERATIONS_PER_EPOCH = 4
BUDGET_FILE = "budget.json"
PLANS = "nnUNetPlans"
DONE_MARKER = "leafnet_benchmark_preprocessed"
UNREAD_INTENSITY_SAMPLES = 1e5


class BudgetSpent(Exception):
    """Raised after the iteration that spends the budget; ends ``run_training``."""


class nnUNetTrainerBudget(nnUNetTrainer):
    """nnU-Net's default trainer, short epochs, stopped by a wall-clock budget."""

    budget_seconds = 0.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cpu")) -> None:
        """nnU-Net's own signature: its trainer records its arguments by name."""
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = ITERATIONS_PER_EPOCH
        self.num_val_iterations_per_epoch = VALIDATION_ITERATIONS_PER_EPOCH
        self.num_epochs = 10**5
        self.save_every = 1
        self.iterations_done = 0

    def _ledger(self) -> Path:
        return Path(self.output_folder) / BUDGET_FILE

    def spent_seconds(self) -> float:
        return self.ledger_entry("train_seconds", 0.0)

    def ledger_entry(self, key: str, default: float) -> float:
        ledger = self._ledger()
        return json.loads(ledger.read_text()).get(key, default) if ledger.is_file() else default

    def run_training(self) -> None:
        self._before = self.spent_seconds()
        self.iterations_done = int(self.ledger_entry("iterations", self.current_epoch
                                                      * self.num_iterations_per_epoch))
        self._started = time.perf_counter()
        self._first_epoch = self.current_epoch
        try:
            super().run_training()
        except BudgetSpent:
            self.on_train_end()

    def _spent_now(self) -> float:
        return self._before + time.perf_counter() - self._started

    def _record(self) -> None:
        write_json(self._ledger(), {"train_seconds": self._spent_now(),
                                    "epochs": self.current_epoch,
                                    "iterations": self.iterations_done})

    def train_step(self, batch: dict) -> dict:
        """One iteration; the budget is checked after every one, since an epoch of nnU-Net's
        default 2D configuration on a CPU can take minutes."""
        result = super().train_step(batch)
        self.iterations_done += 1
        if self._spent_now() >= self.budget_seconds:
            self._record()
            raise BudgetSpent
        return result

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        self._record()
        sitting = time.perf_counter() - self._started
        epoch_seconds = sitting / max(1, self.current_epoch - self._first_epoch)
        expected = self.current_epoch + (self.budget_seconds - self._spent_now()) / epoch_seconds
        self.lr_scheduler.max_steps = max(self.current_epoch + 1, int(expected) + 1)


class FingerprintExtractorBudget(DatasetFingerprintExtractor):
    """nnU-Net's fingerprint extractor, drawing ``UNREAD_INTENSITY_SAMPLES`` foreground
    intensities in all instead of 10^7 when no channel's normalisation reads them (only
    ``CTNormalization`` does; RGB and z-score channels normalise each image by its own
    statistics). The plans differ only in their ``foreground_intensity_properties_per_channel``
    entry, which nothing else reads; on this CPU the 10^7 samples cost about 20 s per planning,
    whatever the dataset's size, outside the budget but inside every benchmark run and test."""

    def __init__(self, dataset_name_or_id: int | str, num_processes: int = 8,
                 verbose: bool = False) -> None:
        super().__init__(dataset_name_or_id, num_processes, verbose)
        channels = self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))
        if all(get_normalization_scheme(name) is not CTNormalization
               for name in channels.values()):
            self.num_foreground_voxels_for_intensitystats = UNREAD_INTENSITY_SAMPLES


def plan_and_preprocess(dataset_id: int, num_processes: int) -> None:
    """nnU-Net's fingerprint, default plans and 2D preprocessing; skipped when a marker says
    that they finished (an interrupted run is redone from the start)."""
    done = Path(nnUNet_preprocessed) / maybe_convert_to_dataset_name(dataset_id) / DONE_MARKER
    if done.is_file():
        return
    extract_fingerprint_dataset(dataset_id, FingerprintExtractorBudget, num_processes,
                                check_dataset_integrity=True)
    plan_experiments([dataset_id])
    preprocess([dataset_id], PLANS, ("2d",), (num_processes,))
    write_json(done, {"finished": "nnU-Net fingerprint, plans and 2D preprocessing"})


def train(dataset_id: int, minutes: float, split: dict[str, list[str]],
          device: torch.device) -> nnUNetTrainerBudget:
    """Train (or continue, or load when finished) fold 0 on leafnet's train/validation split."""
    name = maybe_convert_to_dataset_name(dataset_id)
    folder = Path(nnUNet_preprocessed) / name
    write_json(folder / "splits_final.json", [{"train": split["train"], "val": split["val"]}])
    plans = json.loads((folder / f"{PLANS}.json").read_text())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    nnUNetTrainerBudget.budget_seconds = minutes * 60
    output = (Path(nnUNet_results) / name / f"{nnUNetTrainerBudget.__name__}__{PLANS}__2d"
              / "fold_0")
    plans["continue_training"] = any(output.glob("checkpoint_*.pth"))
    trainer = nnUNetTrainerBudget(plans=plans, configuration="2d", fold=0,
                                  dataset_json=dataset_json, device=device)
    if (output / "checkpoint_final.pth").is_file():
        trainer.load_checkpoint(str(output / "checkpoint_final.pth"))
        return trainer
    if (output / "checkpoint_latest.pth").is_file():
        trainer.load_checkpoint(str(output / "checkpoint_latest.pth"))
    trainer.run_training()
    return trainer


def image_case_id(path: Path, ending: str) -> str:
    """``CASE`` of the single-channel image file ``CASE_0000<ending>``."""
    return path.name[: -len(f"_0000{ending}")]


def to_original_size(predictor: nnUNetPredictor, probabilities: np.ndarray,
                     size: tuple[int, int]) -> np.ndarray:
    """nnU-Net's class probabilities ``(K, 1, h, w)`` resized bilinearly to ``size`` as
    leafnet resizes its own, then made a segmentation ``(1, H, W)`` by nnU-Net's label manager
    (argmax, or its regions' thresholds)."""
    resized = np.stack([resize_probabilities(channel[0], size) for channel in probabilities])
    return predictor.label_manager.convert_probabilities_to_segmentation(resized[:, None])


def predict(trainer: nnUNetTrainerBudget, images: list[Path], output: Path, mirroring: bool,
            device: torch.device,
            original_sizes: dict[str, list[int]] | None = None) -> list[float]:
    """Predict ``images`` (one file each) into ``output``; seconds per image, file IO excluded.
    With ``original_sizes`` (case -> (H, W)) the images were resized for nnU-Net and each
    prediction is mapped back to its case's size."""
    trainer.set_deep_supervision_enabled(False)
    predictor = nnUNetPredictor(use_mirroring=mirroring,
                                perform_everything_on_device=device.type == "cuda",
                                device=device, allow_tqdm=False)
    predictor.manual_initialization(
        trainer.network, trainer.plans_manager, trainer.configuration_manager,
        [trainer.network.state_dict()], trainer.dataset_json, type(trainer).__name__,
        trainer.inference_allowed_mirroring_axes)
    reader = trainer.plans_manager.image_reader_writer_class()
    ending = trainer.dataset_json["file_ending"]
    output.mkdir(parents=True, exist_ok=True)
    seconds = []
    for path in images:
        case_id = image_case_id(path, ending)
        data, properties = reader.read_images([str(path)])
        started = time.perf_counter()
        if original_sizes is None:
            segmentation = predictor.predict_single_npy_array(data, properties)
        else:
            _, probabilities = predictor.predict_single_npy_array(
                data, properties, save_or_return_probabilities=True)
            segmentation = to_original_size(predictor, probabilities,
                                            tuple(original_sizes[case_id]))
        seconds.append(time.perf_counter() - started)
        reader.write_seg(np.asarray(segmentation), str(output / f"{case_id}{ending}"),
                         properties)
        print(f"predicted {case_id} ({len(seconds)} of {len(images)})", flush=True)
    return seconds


def run(dataset_id: int, minutes: float, split: dict[str, list[str]], test_images: Path,
        output: Path, num_processes: int, device: torch.device,
        mirroring_cases: int | None = None,
        original_sizes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Plan, train and predict on ``device`` (with mirroring only the first
    ``mirroring_cases`` images when given: on a CPU it costs four passes per image; with
    ``original_sizes``, predictions mapped back to them); the numbers for the benchmark's
    report."""
    plan_and_preprocess(dataset_id, num_processes)
    trainer = train(dataset_id, minutes, split, device)
    images = sorted(test_images.iterdir())
    report: dict[str, Any] = {
        "train_seconds": trainer.spent_seconds(),
        "epochs": trainer.current_epoch,
        "iterations": int(trainer.ledger_entry("iterations", 0)),
        "batch_size": trainer.configuration_manager.batch_size,
        "patch_size": list(trainer.configuration_manager.patch_size),
        "input_size": [int(side) for side in
                       trainer.plans_manager.get_configuration("2d").median_image_size_in_voxels
                       [-2:]],
        "predictions": {}, "seconds_per_image": {}, "cases": {},
    }
    ending = trainer.dataset_json["file_ending"]
    for mirroring in (False, True):
        key = "mirroring" if mirroring else "no_mirroring"
        chosen = images[:mirroring_cases] if mirroring and mirroring_cases else images
        seconds = predict(trainer, chosen, output / key, mirroring, device, original_sizes)
        report["predictions"][key] = str(output / key)
        report["seconds_per_image"][key] = float(np.median(seconds))
        report["cases"][key] = [image_case_id(path, ending) for path in chosen]
    return report


def main(argv: list[str] | None = None) -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-id", type=int, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--split", type=Path, required=True, help="JSON: train, val lists")
    parser.add_argument("--test-images", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("-np", "--num-processes", type=int, default=2)
    parser.add_argument("--mirroring-cases", type=int)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--original-sizes", type=Path,
                        help="JSON: case -> (H, W) the resized images' predictions go back to")
    args = parser.parse_args(argv)
    sizes = json.loads(args.original_sizes.read_text()) if args.original_sizes else None
    report = run(args.dataset_id, args.minutes, json.loads(args.split.read_text()),
                 args.test_images, args.output, args.num_processes, torch.device(args.device),
                 args.mirroring_cases, sizes)
    write_json(args.report, report)


if __name__ == "__main__":
    main()
