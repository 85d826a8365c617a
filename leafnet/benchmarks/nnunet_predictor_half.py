"""nnU-Net v2's whole predictor timed on the images of ``leafnet_benchmark inference``.

It runs in a process of its own (``utilities.processes.python_main_command``)
because nnunetv2 reads its folders from the environment when it is imported. The scratch
dataset it is pointed at holds the benchmark's images (imagesTs) and a few random training
cases, from which nnU-Net's own fingerprint and planner make the default 2D configuration for
images of this size; nnU-Net's default trainer builds that configuration's network with random
weights (timing only). ``nnUNetPredictor.predict_single_npy_array`` is timed on each image with
and without mirroring: nnU-Net's preprocessing, the sliding window, the export to the original
size and the argmax; reading and writing files are not timed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from leafnet.atomic import write_json
from leafnet.benchmarks.nnunet_half import PLANS, plan_and_preprocess, predict
from leafnet.utilities.processes import exit_on_sigterm


def untrained_trainer(dataset_id: int, device: torch.device) -> nnUNetTrainer:
    """nnU-Net's default plans for the scratch dataset (its trainer also wants the 2D
    preprocessing) and its default trainer's 2D network, randomly initialised, with the
    mirroring axes nnU-Net's trainer sets when training starts (both axes in 2D)."""
    plan_and_preprocess(dataset_id, num_processes=1)
    folder = Path(nnUNet_preprocessed) / maybe_convert_to_dataset_name(dataset_id)
    plans = json.loads((folder / f"{PLANS}.json").read_text())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    plans["continue_training"] = False
    trainer = nnUNetTrainer(plans=plans, configuration="2d", fold=0, dataset_json=dataset_json,
                            device=device)
    trainer.initialize()
    trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    trainer.network.eval()
    return trainer


def time_predictor(dataset_id: int, test_images: Path, output: Path, repeats: int,
                   device: torch.device) -> dict[str, object]:
    """Median seconds per image of the predictor with and without mirroring (each image
    predicted ``repeats`` times after one untimed warm-up pass)."""
    trainer = untrained_trainer(dataset_id, device)
    images = sorted(test_images.iterdir())
    report: dict[str, object] = {
        "patch_size": list(trainer.configuration_manager.patch_size),
        "mirroring_axes": list(trainer.inference_allowed_mirroring_axes),
        "seconds_per_image": {}}
    for mirroring in (False, True):
        key = "mirroring" if mirroring else "no_mirroring"
        predict(trainer, images[:1], output / key, mirroring, device)
        seconds = []
        for _ in range(repeats):
            seconds += predict(trainer, images, output / key, mirroring, device)
        report["seconds_per_image"][key] = float(np.median(seconds))
    return report


def main(argv: list[str] | None = None) -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-id", type=int, required=True)
    parser.add_argument("--test-images", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    write_json(args.report, time_predictor(args.dataset_id, args.test_images, args.output,
                                           args.repeats, torch.device(args.device)))


if __name__ == "__main__":
    main()
