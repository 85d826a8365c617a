"""``leafnet_plan_and_preprocess -d ID [-d ID ...]``."""

from __future__ import annotations

import argparse

from leafnet.errors import exit_on_user_error
from leafnet.models.presets import PRESETS
from leafnet.planning.plan_and_preprocess import plan_and_preprocess
from leafnet.utilities.cli_numbers import positive_int
from leafnet.utilities.parallel import default_num_processes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_plan_and_preprocess",
        description="Verify a raw dataset, write its fingerprint, plans and splits, and "
        "preprocess every case into leafnet_preprocessed/DatasetXXX_Name/.",
    )
    parser.add_argument("-d", "--dataset", required=True, action="append",
                        help="dataset id or folder name (repeat for several)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=default_num_processes(),
                        help="worker processes (default: %(default)s)")
    parser.add_argument("--clean", action="store_true",
                        help="delete earlier plans and preprocessed data first (a splits file "
                        "you wrote yourself is kept)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="model preset recorded in the plans (default: paper, or what "
                        "existing plans say)")
    parser.add_argument("--target-size", type=positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="size the images are resampled to (default: the preset's, 256 256 for "
                        "paper, 128 128 for small; where the preset ships a mask autoencoder, "
                        "the cheapest of one stage, two stages (whole image, then a crop around "
                        "a single structure) and a doubled size whose measured round trip of "
                        "the training masks is good enough; kept from existing plans unless "
                        "the preset changes). Giving it plans one stage")
    parser.add_argument("--labels", nargs="+", metavar="NAME",
                        help="train only these labels (or regions) of dataset.json, e.g. cup "
                        "for the paper's cup-only REFUGE2 (default: every label; kept from "
                        "existing plans)")
    return parser


@exit_on_user_error("leafnet_plan_and_preprocess")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for dataset in args.dataset:
        result = plan_and_preprocess(dataset, args.num_processes, args.clean, args.preset,
                                     tuple(args.target_size) if args.target_size else None,
                                     label_names=args.labels)
        fold = result.splits["folds"][0]
        origin = "yours, kept as is" if result.user_splits else "seeded"
        print(f"{result.folder.name}: {result.processed} cases preprocessed, {result.skipped} "
              f"already up to date" + (f", {result.removed} stale removed" if result.removed
                                       else ""))
        print(f"  splits ({origin}): {len(result.splits['folds'])} fold(s), fold 0 has "
              f"{len(fold['train'])} train / {len(fold['val'])} val, "
              f"{len(result.splits['test'])} test")
        print(f"  plans: {result.folder / 'leafnet_plans.json'} (preset "
              f"{result.plans.preset}, target size {list(result.plans.target_size)})")
        print(f"  labels: {result.plans.label_scheme.describe()}")
        rule = result.plans.json.get("target_size_rule")
        if rule:
            print(f"  size: {rule['decision']}")
            if "table" in rule:
                print("  ceilings measured (mean Dice per class of the training masks through "
                      "each plan and the shipped mask autoencoder, and of the resizing alone):")
                print("\n".join(f"    {line}" for line in rule["table"].splitlines()))
        print(f"  data:  {result.folder / result.plans.data_identifier}")
        crop = result.crop_stage
        if crop is not None and crop.previous_stage is not None:
            print(f"  crop stage: {result.folder / (crop.plans_name + '.json')} (crops around "
                  f"the foreground, {crop.previous_stage.margin:g}x its size, target size "
                  f"{list(crop.target_size)}); train it with -p {crop.plans_name} beside the "
                  f"coarse stage; leafnet_predict -p {crop.plans_name} runs both stages")
            print(f"  data:  {result.folder / crop.data_identifier}")
        for note in result.notes:
            print(f"  note: {note}")
