"""``leafnet_experiment TABLE -d ID [--preset NAME] [--steps N] [--seeds K] [-o DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from leafnet.errors import exit_on_user_error
from leafnet.experiments.experiment import run_experiment
from leafnet.experiments.runs import TABLE_FIRST_STAGE, RunSettings
from leafnet.experiments.tables import TABLES
from leafnet.models.presets import PRESETS
from leafnet.training.progress import log_to_console
from leafnet.utilities.cli_numbers import non_negative_int, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_experiment",
        description="Reproduce one of the paper's tables on a dataset: train (or resume, or "
        "reuse) each row's trainer, score it on the test split with noise seeds 0..K-1, and "
        "write TABLE.md, TABLE.csv, TABLE.json and TABLE_validation_dice.png. Rows whose "
        "teacher weights are not installed are reported as skipped.",
        epilog="tables: " + "; ".join(f"{t.name} = {t.title}" for t in TABLES.values()))
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: the plans' preset")
    parser.add_argument("--steps", type=positive_int, help="training steps of every row "
                        "(default: the trainers' own)")
    parser.add_argument("--seeds", type=positive_int, help="noise seeds 0..K-1 for the test predictions "
                        "(default: 10 for stability, 1 otherwise)")
    parser.add_argument("-o", "--output", type=Path, help="default: leafnet_results/DatasetXXX/"
                        "experiments/TABLE__PLANS__PRESET__Nsteps__fold_F")
    parser.add_argument("-f", "--fold", type=int, default=0)
    parser.add_argument("-p", "--plans", default="leafnetPlans")
    parser.add_argument("--seed", type=non_negative_int, default=12345,
                        help="training seed of every row")
    parser.add_argument("--validate-every", type=positive_int,
                        help="validation interval in steps (the points of the plot)")
    parser.add_argument("--first-stage", default=TABLE_FIRST_STAGE,
                        help="first-stage trainer for presets without a pretrained autoencoder")
    parser.add_argument("--first-stage-steps", type=positive_int,
                        help="its steps (default: reuse a finished one, else its own default)")
    parser.add_argument("-chk", "--checkpoint", choices=("best", "final"), default="best")
    parser.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    return parser


@exit_on_user_error("leafnet_experiment")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    log_to_console()
    settings = RunSettings(args.dataset, args.fold, args.plans, args.preset, args.steps,
                           args.seed, args.validate_every, args.first_stage,
                           args.first_stage_steps, args.device)
    result = run_experiment(args.table, settings, args.seeds, args.output, args.checkpoint)
    print(Path(result["files"]["markdown"]).read_text())
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
