"""``leafnet_benchmark WHAT ...``: print a benchmark's numbers and write them as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from leafnet.benchmarks.inference import benchmark_inference
from leafnet.benchmarks.preprocess import benchmark_preprocess
from leafnet.benchmarks.report import write_report
from leafnet.benchmarks.train_step import benchmark_train_step
from leafnet.errors import exit_on_user_error
from leafnet.models.presets import PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leafnet_benchmark", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    preprocess = benchmarks.add_parser(
        "preprocess", help="leafnet_plan_and_preprocess with -np N against a plain loop")
    preprocess.add_argument("-d", "--dataset", required=True)
    preprocess.add_argument("-np", "--num-processes", type=int, default=2)
    preprocess.add_argument("-o", "--output", type=Path,
                            help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    inference = benchmarks.add_parser(
        "inference", help="parameters and per-image time of the single-step predictor")
    inference.add_argument("--preset", default="small", choices=sorted(PRESETS))
    inference.add_argument("--size", type=int, default=256, help="image side in pixels")
    inference.add_argument("--batch", type=int, default=1)
    inference.add_argument("--repeats", type=int, default=3)
    inference.add_argument("-device", "--device", default="cpu")
    inference.add_argument("-o", "--output", type=Path,
                           help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    train_step = benchmarks.add_parser(
        "train-step", help="seconds per step of _x0 and _x0_distill (cached / online teacher)")
    train_step.add_argument("-d", "--dataset", required=True)
    train_step.add_argument("--preset", default="small", choices=sorted(PRESETS))
    train_step.add_argument("--steps", type=int, default=6)
    train_step.add_argument("-device", "--device", default="cpu")
    train_step.add_argument("-o", "--output", type=Path,
                            help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    return parser


@exit_on_user_error("leafnet_benchmark")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.benchmark == "preprocess":
        numbers = benchmark_preprocess(args.dataset, args.num_processes)
        name = f"preprocess_{numbers['dataset']}"
    elif args.benchmark == "inference":
        numbers = benchmark_inference(args.preset, args.size, args.batch, args.repeats,
                                      args.device)
        name = f"inference_{args.preset}_{args.device}"
    else:
        numbers = benchmark_train_step(args.dataset, args.preset, args.steps, args.device)
        name = f"train_step_{numbers['dataset']}_{args.preset}_{args.device}"
    path = write_report(name, numbers, args.output)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")
