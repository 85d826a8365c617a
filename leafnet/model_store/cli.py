"""``leafnet_export_model``, ``leafnet_install_model`` and ``leafnet_export_onnx``."""

from __future__ import annotations

import argparse
from pathlib import Path

from leafnet.errors import LeafnetError, exit_on_user_error
from leafnet.model_store.discovery import find_models, stage_folders
from leafnet.model_store.export_archive import export_model
from leafnet.model_store.install_archive import install_model
from leafnet.model_store.onnx_export import export_onnx


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """-d, -tr, -f (several), -p and --preset: which trained model and folds."""
    parser.add_argument("-d", "--dataset")
    parser.add_argument("-tr", "--trainer")
    parser.add_argument("-f", "--folds", type=int, nargs="+",
                        help="folds to include (default: the only trained one)")
    parser.add_argument("-p", "--plans")
    parser.add_argument("--preset")


@exit_on_user_error("leafnet_export_model")
def export_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafnet_export_model",
        description="Write a trained model (one or more folds) as a zip to share: safetensors "
        "weights, JSON configs, plans, dataset.json and the validation/test summaries; no "
        "pickles. Install it elsewhere with leafnet_install_model.")
    add_model_flags(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .zip to write")
    parser.add_argument("-chk", "--checkpoints", nargs="+", choices=("best", "final"),
                        default=["best"])
    args = parser.parse_args(argv)
    if args.output.suffix != ".zip":
        raise LeafnetError(f"-o {args.output}: give a file name ending in .zip")
    folders = find_models(args.dataset, args.trainer, args.folds, args.plans, args.preset)
    export_model(folders, args.output, args.checkpoints)
    print(f"exported {folders[0].parent} folds "
          f"{[int(f.name.removeprefix('fold_')) for f in folders]} to {args.output}")


@exit_on_user_error("leafnet_install_model")
def install_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafnet_install_model",
        description="Install a model zip made by leafnet_export_model into LEAFNET_RESULTS, "
        "where leafnet_predict finds it. Archives with paths outside their folder, links, "
        "files other than JSON/safetensors/ONNX or wrong checksums are refused.")
    parser.add_argument("archive", type=Path)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace folds of the same model that are already installed")
    args = parser.parse_args(argv)
    for folder in install_model(args.archive, overwrite=args.overwrite):
        print(f"installed {folder}")


@exit_on_user_error("leafnet_export_onnx")
def onnx_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafnet_export_onnx",
        description="Write the single-step predictor (image and noise in, probabilities out) "
        "of each fold, and of each stage before a crop stage, as ONNX beside its exported "
        "weights, checked against PyTorch; predict with it by leafnet_predict --backend "
        "onnxruntime. Needs pip install -e '.[onnx]'.")
    add_model_flags(parser)
    parser.add_argument("-chk", "--checkpoint", choices=("best", "final"), default="best")
    parser.add_argument("--fast-decoder", action="store_true",
                        help="with the fast mask decoder (leafnet_distill_decoder)")
    args = parser.parse_args(argv)
    folders = find_models(args.dataset, args.trainer, args.folds, args.plans, args.preset)
    stages = stage_folders(folders)
    if len(stages) > 1:
        print(f"a model of {len(stages)} stages: each is exported "
              f"({', '.join(stage[0].parent.name for stage in stages)})")
    for folder in (folder for stage in stages for folder in stage):
        record = export_onnx(folder, args.checkpoint, args.fast_decoder)
        print(f"{folder}/{record['checkpoint']}/{record['file']}: max abs difference to "
              f"PyTorch {record['max_abs_difference_vs_torch']:.2e} on random inputs")
