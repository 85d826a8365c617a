"""``leafnet_benchmark WHAT ...``: print a benchmark's numbers and write them as JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from leafnet.atomic import write_text
from leafnet.benchmarks.first_stage_ceiling import benchmark_first_stage_ceiling, ceiling_table
from leafnet.benchmarks.inference import benchmark_inference
from leafnet.benchmarks.preprocess import benchmark_preprocess
from leafnet.benchmarks.report import write_report
from leafnet.benchmarks.two_stages import (
    COARSE_SHARE,
    benchmark_two_stages,
    two_stages_benchmark_folder,
    two_stages_markdown_table,
)
from leafnet.benchmarks.two_stages import FIRST_STAGE_SHARE as TWO_STAGES_FIRST_STAGE_SHARE
from leafnet.benchmarks.two_stages import ROWS as TWO_STAGES_ROWS
from leafnet.benchmarks.suite import DEFAULT_DATA, SUITE, run_suite, suite_folder, summary_table
from leafnet.benchmarks.train_step import benchmark_train_step
from leafnet.benchmarks.versus_nnunet import (
    DEFAULT_TRAINER,
    FIRST_STAGE_SHARE,
    ROWS,
    VALIDATE_EVERY,
    benchmark_folder,
    benchmark_versus_nnunet,
    markdown_table,
)
from leafnet.errors import exit_on_user_error
from leafnet.models.presets import PRESETS
from leafnet.raw_format import find_dataset
from leafnet.utilities.cli_numbers import (
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
)
from leafnet.utilities.machine import machine, usable_device
from leafnet.utilities.processes import STALL_MINUTES


def rows_parser(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """``--rows a,b``: baseline rows, each one of ``choices``."""
    def parse(text: str) -> tuple[str, ...]:
        rows = tuple(row.strip() for row in text.split(",") if row.strip())
        unknown = sorted(set(rows) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown row(s) {', '.join(unknown)}; choose "
                                             f"from {', '.join(choices)}")
        return rows
    return parse


def add_training_flags(parser: argparse.ArgumentParser, minutes_help: str,
                       first_stage_share: float = FIRST_STAGE_SHARE) -> None:
    """The flags of the benchmarks that train leafnet for a budget."""
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("--minutes", type=positive_float, required=True, help=minutes_help)
    parser.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER)
    parser.add_argument("--first-stage", help="mask autoencoder trainer (default: the trainer's "
                        "own)")
    parser.add_argument("--first-stage-share", type=open_fraction, default=first_stage_share,
                        help="the most of leafnet's minutes its mask autoencoder may take; it "
                        "stops as soon as it reconstructs the training masks at the target "
                        "Dice, often before its first step (default: %(default)s)")
    parser.add_argument("--validate-every", type=positive_int, default=VALIDATE_EVERY)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leafnet_benchmark", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    preprocess = benchmarks.add_parser(
        "preprocess", help="leafnet_plan_and_preprocess with -np N against a plain loop")
    preprocess.add_argument("-d", "--dataset", required=True)
    preprocess.add_argument("-np", "--num-processes", type=positive_int, default=2)
    preprocess.add_argument("-o", "--output", type=Path,
                            help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    inference = benchmarks.add_parser(
        "inference", help="parameters and per-image time of the single-step predictor: PyTorch "
        "and onnxruntime, frozen and fast decoder, beside nnU-Net's 2D network and its whole "
        "predictor")
    inference.add_argument("--preset", default="small", choices=sorted(PRESETS))
    inference.add_argument("--size", type=positive_int,
                           help="image side in pixels (default: the preset's planned size)")
    inference.add_argument("--no-onnx", action="store_true",
                           help="leave out the onnxruntime rows (they export two ONNX files)")
    inference.add_argument("--batch", type=positive_int, default=1)
    inference.add_argument("--repeats", type=positive_int, default=3)
    inference.add_argument("-device", "--device", default="cpu")
    inference.add_argument("-o", "--output", type=Path,
                           help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    train_step = benchmarks.add_parser(
        "train-step", help="seconds per step of _x0 and _x0_distill (cached / online teacher)")
    train_step.add_argument("-d", "--dataset", required=True)
    train_step.add_argument("--preset", default="small", choices=sorted(PRESETS))
    train_step.add_argument("--steps", type=positive_int, default=6)
    train_step.add_argument("-device", "--device", default="cpu")
    train_step.add_argument("-o", "--output", type=Path,
                            help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    versus = benchmarks.add_parser(
        "versus-nnunet", help="leafnet, nnU-Net v2 2D (its own plans, and on leafnet's "
        "resized images) and a plain U-Net trained for the same minutes each on the same split, "
        "scored on the same test images")
    add_training_flags(versus, "training minutes of each method (leafnet's mask autoencoder "
                       "included)")
    versus.add_argument("--rows", type=rows_parser(ROWS), default=ROWS,
                        help="the baseline rows to train beside leafnet, comma-separated "
                        f"(default: all, {','.join(ROWS)})")
    versus.add_argument("-np", "--num-processes", type=positive_int, default=2,
                        help="nnU-Net's preprocessing and augmentation processes")
    versus.add_argument("--mirroring-cases", type=non_negative_int,
                        help="predict only the first N test images with nnU-Net's mirroring "
                        "(four passes per image; default: all)")
    versus.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"),
                        help="where both methods train and predict (default: leafnet's, the "
                        "GPU when there is one)")
    versus.add_argument("--stall-minutes", type=positive_float, default=STALL_MINUTES,
                        help="an nnU-Net row whose process writes nothing this long is ended "
                        "and reported failed (default: %(default)s)")
    versus.add_argument("-o", "--output", type=Path,
                        help="benchmark folder (default: LEAFNET_RESULTS/benchmarks/"
                        "versus_nnunet_DATASET_Mmin)")
    suite = benchmarks.add_parser(
        "suite", help="versus-nnunet on every real dataset at hand (Kvasir-SEG, CVC-ClinicDB, "
        "chest X-ray lungs), each converted as distributed and planned with the defaults, with "
        "a summary table")
    suite.add_argument("--minutes", type=positive_float, required=True,
                       help="training minutes of each row (leafnet's mask autoencoder included)")
    suite.add_argument("--data", type=Path, default=DEFAULT_DATA,
                       help="the folder holding the datasets as distributed (default: "
                       "%(default)s)")
    suite.add_argument("--datasets", type=rows_parser(tuple(e.folder for e in SUITE)),
                       help="only these datasets, comma-separated (default: all found)")
    suite.add_argument("--rows", type=rows_parser(ROWS), default=ROWS,
                       help=f"the baseline rows (default: all, {','.join(ROWS)})")
    suite.add_argument("--mirroring-cases", type=non_negative_int,
                       help="predict only the first N test images with nnU-Net's mirroring")
    suite.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    suite.add_argument("--stall-minutes", type=positive_float, default=STALL_MINUTES,
                       help="an nnU-Net row whose process writes nothing this long is ended "
                       "and reported failed (default: %(default)s)")
    suite.add_argument("-o", "--output", type=Path,
                       help="suite folder (default: LEAFNET_RESULTS/benchmarks/suite_Mmin)")
    ceiling = benchmarks.add_parser(
        "first-stage-ceiling", help="the shipped mask autoencoder, untouched: the round trip "
        "of every real dataset's masks at hand and of synthetic sets, at the preset's size")
    ceiling.add_argument("--data", type=Path, default=DEFAULT_DATA,
                         help="the folder holding the datasets as distributed (default: "
                         "%(default)s)")
    ceiling.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ceiling.add_argument("--cases", type=positive_int, default=100,
                         help="masks per set (default: %(default)s)")
    ceiling.add_argument("-o", "--output", type=Path,
                         help="JSON file (default: LEAFNET_RESULTS/benchmarks/...)")
    two = benchmarks.add_parser(
        "two-stages", help="two-stage plans (whole image, then a crop) against images cropped "
        "around the reference by hand and against one enlarged stage, the same minutes each")
    add_training_flags(two, "training minutes of each row (both stages together)",
                       TWO_STAGES_FIRST_STAGE_SHARE)
    two.add_argument("--coarse-share", type=open_fraction, default=COARSE_SHARE,
                     help="share of the two stages' minutes for the coarse stage (default: "
                     "%(default)s)")
    two.add_argument("--rows", type=rows_parser(TWO_STAGES_ROWS), default=TWO_STAGES_ROWS,
                     help=f"rows beside the two stages (default: all, {','.join(TWO_STAGES_ROWS)})")
    two.add_argument("--preset", choices=sorted(PRESETS),
                     help="train every row with this preset (default: the plans')")
    two.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    two.add_argument("-o", "--output", type=Path,
                     help="benchmark folder (default: LEAFNET_RESULTS/benchmarks/"
                     "two_stages_DATASET_Mmin)")
    return parser


def two_stages(args: argparse.Namespace) -> None:
    """Run the two-stages benchmark; write its JSON and markdown table in its folder."""
    folder = args.output or two_stages_benchmark_folder(find_dataset(args.dataset).name,
                                                        args.minutes)
    numbers = benchmark_two_stages(
        args.dataset, args.minutes, trainer=args.trainer, first_stage=args.first_stage,
        first_stage_share=args.first_stage_share, validate_every=args.validate_every,
        coarse_share=args.coarse_share, rows=args.rows, folder=folder,
        device=args.device, preset=args.preset)
    path = write_report("two_stages", numbers, folder / "two_stages.json")
    table = two_stages_markdown_table({**numbers, "machine": machine()})
    write_text(path.with_suffix(".md"), table)
    print(table)
    print(f"written to {path} and {path.with_suffix('.md')}")


def versus_nnunet(args: argparse.Namespace) -> None:
    """Run the benchmark; write its JSON and markdown table in the benchmark folder."""
    folder = args.output or benchmark_folder(find_dataset(args.dataset).name, args.minutes)
    numbers = benchmark_versus_nnunet(
        args.dataset, args.minutes, trainer=args.trainer, first_stage=args.first_stage,
        first_stage_share=args.first_stage_share, validate_every=args.validate_every,
        rows=args.rows, num_processes=args.num_processes,
        mirroring_cases=args.mirroring_cases, folder=folder, device=args.device,
        stall_minutes=args.stall_minutes)
    path = write_report("versus_nnunet", numbers, folder / "versus_nnunet.json")
    table = markdown_table({**numbers, "machine": machine()})
    write_text(path.with_suffix(".md"), table)
    print(table)
    print(f"written to {path} and {path.with_suffix('.md')}")


def suite(args: argparse.Namespace) -> None:
    """Run the suite; write its JSON and summary table in the suite folder."""
    folder = args.output or suite_folder(args.minutes)
    numbers = run_suite(args.minutes, args.data, args.datasets, args.rows, folder,
                        mirroring_cases=args.mirroring_cases, device=args.device,
                        stall_minutes=args.stall_minutes)
    path = write_report("suite", numbers, folder / "suite.json")
    table = summary_table(numbers)
    write_text(path.with_suffix(".md"), table)
    print(table)
    print(f"written to {path} and {path.with_suffix('.md')}")


@exit_on_user_error("leafnet_benchmark")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if hasattr(args, "device"):  # checked here once; not given: the default device
        args.device = usable_device(args.device)
    if args.benchmark == "preprocess":
        numbers = benchmark_preprocess(args.dataset, args.num_processes)
        name = f"preprocess_{numbers['dataset']}"
    elif args.benchmark == "inference":
        numbers = benchmark_inference(args.preset, args.size, args.batch, args.repeats,
                                      args.device, onnx=not args.no_onnx)
        name = f"inference_{args.preset}_{args.device}"
    elif args.benchmark == "train-step":
        numbers = benchmark_train_step(args.dataset, args.preset, args.steps, args.device)
        name = f"train_step_{numbers['dataset']}_{args.preset}_{args.device}"
    elif args.benchmark == "first-stage-ceiling":
        numbers = benchmark_first_stage_ceiling(args.data, args.preset, args.cases)
        path = write_report(f"first_stage_ceiling_{args.preset}", numbers, args.output)
        table = ceiling_table(numbers)
        write_text(path.with_suffix(".md"), table)
        print(table)
        print(f"written to {path} and {path.with_suffix('.md')}")
        return
    elif args.benchmark == "suite":
        suite(args)
        return
    elif args.benchmark == "two-stages":
        two_stages(args)
        return
    else:
        versus_nnunet(args)
        return
    path = write_report(name, numbers, args.output)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")
