"""``leafnet_convert SOURCE ...``: one subcommand per dataset source."""

from __future__ import annotations

import argparse
from pathlib import Path

from leafnet.dataset_conversion import PUBLIC_SOURCES, demo, folder, fundus
from leafnet.errors import exit_on_user_error
from leafnet.utilities.cli_numbers import non_negative_int, positive_int
from leafnet.utilities.parallel import default_num_processes


def _common(parser: argparse.ArgumentParser, default_id: int | str | None) -> None:
    """-d (required without a default; a text default is resolved by the converter), --overwrite
    and -np."""
    if default_id is None:
        parser.add_argument("-d", "--dataset-id", type=int, required=True,
                            help="id of the new dataset (1-999)")
    else:
        parser.add_argument("-d", "--dataset-id", type=int,
                            default=default_id if isinstance(default_id, int) else None,
                            help=f"id of the new dataset (default: {default_id})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset with the same id")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=default_num_processes(),
                        help="worker processes (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_convert",
        description="Convert a dataset into leafnet's raw format under LEAFNET_RAW, then run "
        "the integrity check on it.",
    )
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    generator = sources.add_parser("demo", help="generate the synthetic demo dataset")
    _common(generator, f"{demo.DEFAULT_ID}, or {demo.NESTED_ID} with --num-labels 2")
    generator.add_argument("--seed", type=non_negative_int, default=demo.DEFAULT_SEED)
    generator.add_argument("--num-cases", type=int, default=demo.DEFAULT_NUM_CASES)
    generator.add_argument("--test-fraction", type=float, default=demo.DEFAULT_TEST_FRACTION)
    generator.add_argument("--size", type=int, default=256, help="image side in pixels")
    generator.add_argument("--num-labels", type=int, default=1, choices=(1, 2),
                           help="2: each blob has a core, nested regions lesion {1, 2} and "
                           "core {2} (dataset LeafnetDemoNested; give it its own -d)")
    synthetic_fundus = sources.add_parser(
        "fundus", help="generate a synthetic REFUGE2-like fundus set (optic disc and a small cup "
        "in large images, nested regions)")
    _common(synthetic_fundus, fundus.DEFAULT_ID)
    synthetic_fundus.add_argument("--seed", type=non_negative_int, default=0)
    synthetic_fundus.add_argument("--num-cases", type=int, default=fundus.DEFAULT_NUM_CASES)
    synthetic_fundus.add_argument("--test-fraction", type=float,
                                  default=fundus.DEFAULT_TEST_FRACTION)
    synthetic_fundus.add_argument("--size", type=int, default=fundus.DEFAULT_SIZE,
                                  help="image side in pixels")
    for name, public in PUBLIC_SOURCES.items():
        sub = sources.add_parser(
            name, help=public.title, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"{public.title}. Source layouts:\n{public.layout}")
        sub.add_argument("src", type=Path, help="folder of the downloaded dataset")
        _common(sub, public.default_id)
    pairs = sources.add_parser("folder", help="any folder of images with a folder of masks")
    pairs.add_argument("--images", type=Path, required=True)
    pairs.add_argument("--masks", type=folder.parse_named, action="append", required=True,
                       metavar="DIR|NAME=DIR",
                       help="the mask folder, or one binary mask folder per label (repeat: "
                       "--masks disc=DIR --masks cup=DIR; labels numbered in this order)")
    pairs.add_argument("--name", required=True, help="dataset name, e.g. MyPolyps")
    pairs.add_argument("--labels",
                       help="comma-separated label names of one mask folder's values, "
                       "background first (default: background,foreground)")
    pairs.add_argument("--mask-prefix", help="mask name = PREFIX + image stem + SUFFIX")
    pairs.add_argument("--mask-suffix")
    pairs.add_argument("--threshold", type=lambda t: folder.parse_named(t, float),
                       action="append", metavar="T|NAME=T",
                       help="binarise masks: foreground where value >= T (default: decided "
                       "from all masks and printed); per label folder NAME=T, e.g. cup=128 "
                       "for soft maps")
    pairs.add_argument("--nested", action="store_true",
                       help="with several label folders: each mask contains the next (disc, "
                       "then cup); stored as nested regions (nnU-Net's region format)")
    pairs.add_argument("--label-map", type=folder.parse_label_map,
                       help="map mask values to labels, e.g. 0:0,128:1,255:2")
    pairs.add_argument("--mask-channel", type=non_negative_int,
                       help="read colour masks from this channel (0 = R, 1 = G, 2 = B, 3 = "
                       "alpha)")
    pairs.add_argument("--channels", type=int, choices=(1, 3),
                       help="1 (grayscale) or 3 (RGB); default: the first image's")
    pairs.add_argument("--test-images", type=Path)
    pairs.add_argument("--test-masks", type=folder.parse_named, action="append",
                       metavar="DIR|NAME=DIR")
    pairs.add_argument("--split", type=folder.parse_split,
                       help="ratio:0.8,0.1,0.1 | official_test:0.1 | kfold:5 (default: "
                       "official_test:0.1 with test folders, else ratio:0.8,0.1,0.1)")
    _common(pairs, None)
    return parser


def convert(args: argparse.Namespace) -> tuple[Path, object]:
    """Run the converter that ``args.source`` names."""
    common = dict(dataset_id=args.dataset_id, overwrite=args.overwrite,
                  num_processes=args.num_processes)
    if args.source == "demo":
        if args.dataset_id is None:
            common["dataset_id"] = demo.NESTED_ID if args.num_labels == 2 else demo.DEFAULT_ID
        return demo.convert_demo(seed=args.seed, num_cases=args.num_cases,
                                 test_fraction=args.test_fraction, size=args.size,
                                 num_labels=args.num_labels, **common)
    if args.source == "fundus":
        return fundus.convert_fundus(seed=args.seed, num_cases=args.num_cases,
                                     test_fraction=args.test_fraction, size=args.size, **common)
    if args.source == "folder":
        masks = folder.named_option(args.masks, "--masks")
        return folder.convert_folder(
            args.images, masks, name=args.name,
            labels=[label.strip() for label in args.labels.split(",")] if args.labels else None,
            mask_prefix=args.mask_prefix, mask_suffix=args.mask_suffix,
            threshold=folder.named_option(args.threshold, "--threshold"),
            label_map=args.label_map, mask_channel=args.mask_channel, channels=args.channels,
            test_images=args.test_images,
            test_masks=folder.named_option(args.test_masks, "--test-masks"), split=args.split,
            nested=args.nested, **common)
    return PUBLIC_SOURCES[args.source].convert(args.src, **common)


@exit_on_user_error("leafnet_convert")
def main(argv: list[str] | None = None) -> None:
    folder_path, report = convert(build_parser().parse_args(argv))
    print(report.format())
    print(f"written to {folder_path}")
