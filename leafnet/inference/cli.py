"""``leafnet_predict -i IN -o OUT [-d ID] [-tr TRAINER] [-f FOLD] ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leafnet.errors import LeafnetError, exit_on_user_error
from leafnet.model_store.discovery import find_models, stage_folders
from leafnet.models.fold_record import model_digest
from leafnet.models.network import exported_model
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.two_stages import TwoStagePredictor, load_predictor
from leafnet.inference.predictor import BACKENDS
from leafnet.inference.stability import seed_stability
from leafnet.utilities.cli_numbers import non_negative_int, positive_int
from leafnet.utilities.machine import usable_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_predict",
        description="Segment a folder of images with a trained LEAF model (one reverse step); "
        "labels are written at each input's size, in its format (JPEG inputs give PNG).")
    parser.add_argument("-i", "--input", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("-d", "--dataset")
    parser.add_argument("-tr", "--trainer")
    parser.add_argument("-f", "--folds", type=int, nargs="+",
                        help="one fold, or several to ensemble (their probabilities are "
                        "averaged)")
    parser.add_argument("-p", "--plans")
    parser.add_argument("--preset")
    parser.add_argument("-chk", "--checkpoint", choices=("best", "final"), default="best")
    parser.add_argument("--save_probabilities", action="store_true",
                        help="also write CASE.npz: 'probabilities' (K, H, W), one map per label "
                        "or region at original size, and their names in 'classes'")
    parser.add_argument("--save_uncertainty", action="store_true",
                        help="also write CASE_uncertainty.npz: 'uncertainty' (K, H, W), the "
                        "standard deviation of each class probability over the folds and noise "
                        "samples (needs several folds or --num_samples >= 2)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="onnxruntime runs the fold's ONNX file (leafnet_export_onnx)")
    parser.add_argument("--fast-decoder", action="store_true",
                        help="decode masks with the fold's distilled fast decoder "
                        "(leafnet_distill_decoder)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="fixes the noise")
    parser.add_argument("--num_samples", type=positive_int, default=1,
                        help="average K noise draws before thresholding (default 1, the paper)")
    parser.add_argument("--mirroring", action="store_true",
                        help="test-time mirroring: average the predictions of the image and its "
                        "three flips (as nnU-Net does; four times the time)")
    parser.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    parser.add_argument("--continue", dest="continue_prediction", action="store_true",
                        help="skip inputs whose output exists")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--num_seeds", type=positive_int, default=1,
                        help="with -ref: predict with seeds 0..N-1 into OUT/seed_S/ and report "
                        "each seed's mean Dice and their std in OUT/stability.json (Table 4)")
    parser.add_argument("-ref", "--reference", type=Path,
                        help="reference labels for --num_seeds")
    return parser


@exit_on_user_error("leafnet_predict")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    folders = find_models(args.dataset, args.trainer, args.folds, args.plans, args.preset)
    device = usable_device(args.device)
    if args.backend == "onnxruntime" and device != "cpu":
        raise LeafnetError("--backend onnxruntime runs on the CPU; add -device cpu")
    predictor = load_predictor(folders, args.checkpoint, device, args.batch_size, args.backend,
                               args.fast_decoder, args.mirroring)
    folder = folders[0] if len(folders) == 1 else folders[0].parent
    if args.num_seeds > 1:
        if args.reference is None:
            raise LeafnetError("--num_seeds needs -ref REFERENCE_LABELS to evaluate each seed")
        numbers = seed_stability(predictor, args.input, args.reference, args.output,
                                 list(range(args.num_seeds)))
        print(f"model: {folder}\nmean Dice over {args.num_seeds} seeds "
              f"{numbers['Dice']:.4f} +- {numbers['Dice_std']:.4f} (std of per-seed "
              f"means); {args.output / 'stability.json'}")
        if len(numbers["per_class"]) > 1:
            for name, spread in numbers["per_class"].items():
                print(f"  {name}: {spread['Dice']:.4f} +- {spread['Dice_std']:.4f}")
        return
    identity = {"models": {str(path): model_digest(exported_model(path, args.checkpoint))
                           for stage in stage_folders(folders) for path in stage},
                "seed": args.seed, "num_samples": args.num_samples, "backend": args.backend,
                "fast_decoder": args.fast_decoder, "mirroring": args.mirroring}
    result = predict_folder(predictor, args.input, args.output, args.seed, args.num_samples,
                            args.save_probabilities, args.continue_prediction,
                            save_uncertainty=args.save_uncertainty, identity=identity)
    if result.note:
        print(f"note: {result.note}")
    print(f"model: {folder}" + (f" (folds {args.folds}, probabilities averaged)"
                                 if len(folders) > 1 else "")
          + (", test-time mirroring (four views averaged)" if args.mirroring else ""))
    if isinstance(predictor, TwoStagePredictor):
        print(predictor.describe())
    print(f"{len(result.written)} predicted, {len(result.skipped)} skipped (already there), "
          f"written to {args.output}")
    if result.failed:
        lines = "\n".join(f"  {case}: {error}" for case, error in result.failed.items())
        print(f"{len(result.failed)} inputs failed:\n{lines}", file=sys.stderr)
        total = len(result.failed) + len(result.written) + len(result.skipped)
        raise LeafnetError(f"{len(result.failed)} of {total} inputs could not be predicted "
                           "(listed above)")
