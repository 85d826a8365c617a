"""``leafnet_train DATASET TRAINER [-f FOLD] ...``."""

from __future__ import annotations

import argparse
import inspect
import os
import sys

from leafnet.errors import LeafnetError, exit_on_user_error
from leafnet.models.presets import PRESETS
from leafnet.training.progress import log_to_console
from leafnet.training.registry import find_trainer
from leafnet.training.trainers.base import LEAFTrainer
from leafnet.utilities.cli_numbers import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from leafnet.utilities.processes import run_child


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_train",
        description="Train a LEAF model (or the first-stage autoencoder) on a preprocessed "
        "dataset. Output: leafnet_results/DatasetXXX_Name/TRAINER__PLANS__PRESET/fold_N/.")
    parser.add_argument("dataset", help="dataset id or name")
    parser.add_argument("trainer", help="trainer class, e.g. LEAFTrainer_x0_distill, "
                        "LEAFAutoencoderTrainer")
    parser.add_argument("-f", "--fold", type=non_negative_int, default=0)
    parser.add_argument("-p", "--plans", default="leafnetPlans")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: the plans' preset")
    parser.add_argument("--steps", type=positive_int, help="training steps (default: the trainer's, or "
                        "as many as fit in --minutes)")
    parser.add_argument("--minutes", type=positive_float,
                        help="wall-clock budget: stop at the first step boundary after M minutes "
                        "of training (over all sittings), save the final checkpoint; a decaying "
                        "LR schedule follows the spent fraction of the budget")
    parser.add_argument("--c", action="store_true",
                        help="continue from checkpoint_latest (refused when the fold record's "
                        "inputs differ: seed, --lam, the first stage and its weights, the split, "
                        "preset, plans; or the target, unless --extend)")
    parser.add_argument("--extend", action="store_true",
                        help="with --c: train further, to a larger --steps/--minutes target")
    parser.add_argument("--val", action="store_true",
                        help="only validate checkpoint_final (EMA weights)")
    parser.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    parser.add_argument("--seed", type=non_negative_int, default=12345)
    parser.add_argument("--lam", type=non_negative_float, help="distillation weight lambda")
    parser.add_argument("--validate-every", type=positive_int)
    parser.add_argument("--workers", type=non_negative_int, help="data loader processes")
    parser.add_argument("--first-stage", help="trainer whose autoencoder a preset without "
                        "pretrained weights uses (default: the trainer's own, "
                        "LEAFAutoencoderTrainer_cpu for LEAFTrainer_x0_cpu); trained first when "
                        "missing")
    parser.add_argument("-num_gpus", "--num-gpus", type=positive_int, default=1,
                        help="start this many processes with torchrun (DDP)")
    return parser


def _relaunch_with_torchrun(argv: list[str], processes: int) -> None:
    """``-num_gpus N``: the same command under torch.distributed.run with N processes."""
    forwarded, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("-num_gpus", "--num-gpus"):
            skip = True
            continue
        if not item.startswith(("-num_gpus=", "--num-gpus=")):
            forwarded.append(item)
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "-m", "leafnet.training.cli", *forwarded]
    sys.exit(run_child(command).returncode)


@exit_on_user_error("leafnet_train")
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    log_to_console()
    if args.num_gpus > 1 and "WORLD_SIZE" not in os.environ:
        _relaunch_with_torchrun(argv, args.num_gpus)
    trainer_class = find_trainer(args.trainer)
    task_options = {name: value for name, value in (("lam", args.lam),
                                                     ("first_stage", args.first_stage))
                    if value is not None}
    accepted = inspect.signature(trainer_class).parameters
    for name in task_options:
        if name not in accepted:
            raise LeafnetError(f"--{name.replace('_', '-')} does not apply to {args.trainer} "
                               "(it is an option of the diffusion trainers)")
    trainer = trainer_class(
        args.dataset, fold=args.fold, plans_name=args.plans, preset=args.preset,
        device=args.device, seed=args.seed, num_steps=args.steps,
        validate_every=args.validate_every, num_workers=args.workers, minutes=args.minutes,
        extend=args.extend, **task_options)
    if args.val:
        print(trainer.validate_checkpoint())
        return
    if isinstance(trainer, LEAFTrainer) and trainer.first_stage_missing():
        print(f"{args.trainer} needs the first stage {trainer.first_stage} of this dataset, plans, "
              f"preset and fold, which is not trained yet: training it first (from the shipped "
              "mask autoencoder, only until it reconstructs the training masks well enough)")
        find_trainer(trainer.first_stage)(
            args.dataset, fold=args.fold, plans_name=args.plans, preset=args.preset,
            device=args.device, seed=args.seed, num_workers=args.workers).run(
                continue_training=True)
    trainer.run(continue_training=args.c)


if __name__ == "__main__":
    main()
