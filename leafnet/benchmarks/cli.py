"""``leafnet_benchmark WHAT ...``: print a benchmark's numbers and write them as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from leafnet.benchmarks.preprocess import benchmark_preprocess
from leafnet.benchmarks.report import write_report
from leafnet.errors import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leafnet_benchmark", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    preprocess = benchmarks.add_parser(
        "preprocess", help="leafnet_plan_and_preprocess with -np N against a plain loop")
    preprocess.add_argument("-d", "--dataset", required=True)
    preprocess.add_argument("-np", "--num-processes", type=int, default=2)
    preprocess.add_argument("-o", "--output", type=Path,
                            help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    return parser


@exit_on_user_error("leafnet_benchmark")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    numbers = benchmark_preprocess(args.dataset, args.num_processes)
    path = write_report(f"preprocess_{numbers['dataset']}", numbers, args.output)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")
