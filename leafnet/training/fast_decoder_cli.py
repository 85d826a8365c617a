"""``leafnet_distill_decoder -d ID [-tr TRAINER] [-f FOLDS] [-chk best|final]``: the fast mask
decoder of a fold's exported model."""

from __future__ import annotations

import argparse

from leafnet.errors import exit_on_user_error
from leafnet.model_store.cli import add_model_flags
from leafnet.model_store.discovery import find_models
from leafnet.training.fast_decoder_distillation import distill_fast_decoder
from leafnet.training.progress import log_to_console
from leafnet.utilities.cli_numbers import positive_float, positive_int
from leafnet.utilities.machine import usable_device


@exit_on_user_error("leafnet_distill_decoder")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafnet_distill_decoder",
        description="Train a small mask decoder that reproduces the frozen decoder's masks of a "
        "trained fold (on its training cases' mask latents and single-step estimates) and "
        "save it as FOLD/fast_decoder/; predict with it by leafnet_predict --fast-decoder.")
    add_model_flags(parser)
    parser.add_argument("--steps", type=positive_int, default=1500)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--max-cases", type=positive_int, default=200,
                        help="training cases whose latents it learns from (the frozen decoder's "
                        "targets are the slow part; chosen by the seed)")
    parser.add_argument("-chk", "--checkpoint", choices=("best", "final"), default="best",
                        help="the exported model it decodes for (prediction with another "
                        "checkpoint refuses it)")
    parser.add_argument("-device", "--device", choices=("cuda", "mps", "cpu"))
    parser.add_argument("--minutes", type=positive_float,
                        help="wall-clock budget (over all sittings), as leafnet_train's")
    parser.add_argument("--c", action="store_true",
                        help="continue an interrupted distillation (same settings and model) "
                        "from its last checkpoint in FOLD/fast_decoder_training/")
    parser.add_argument("--extend", action="store_true",
                        help="with --c: train further, to a larger --steps/--minutes target")
    args = parser.parse_args(argv)
    log_to_console()
    for folder in find_models(args.dataset, args.trainer, args.folds, args.plans, args.preset):
        report = distill_fast_decoder(folder, args.steps, args.batch_size,
                                      device=usable_device(args.device),
                                      max_cases=args.max_cases, resume=args.c,
                                      checkpoint=args.checkpoint, minutes=args.minutes,
                                      extend=args.extend)
        validation = report.get("validation")
        summary = "no validation cases to measure it on"
        if validation:
            summary = (f"validation ({validation['cases']} cases), fast vs frozen decoder Dice "
                       f"{validation['estimates_fast_vs_frozen']:.4f} on the single-step "
                       f"estimates, {validation['masks_fast_vs_frozen']:.4f} on the masks' "
                       f"latents; Dice of the predictions against the labels: frozen "
                       f"{validation['estimates_frozen_vs_reference']:.4f}, fast "
                       f"{validation['estimates_fast_vs_reference']:.4f}")
        print(f"{folder}/fast_decoder: {report['training_cases']} training cases, "
              f"{report['steps']} steps in {report['train_seconds']:.0f} s; {summary}")
