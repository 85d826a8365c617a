"""``leafnet_verify -d ID``: run the integrity check on a raw dataset."""

from __future__ import annotations

import argparse

from leafnet.errors import exit_on_user_error
from leafnet.raw_format import find_dataset
from leafnet.utilities.cli_numbers import positive_int
from leafnet.utilities.parallel import default_num_processes
from leafnet.verification.integrity import assert_dataset_ok


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_verify",
        description="Check a raw dataset (names, formats, sizes, channels, label values) and "
        "report every problem with the files that show it and how to fix it.",
    )
    parser.add_argument("-d", "--dataset", required=True, action="append",
                        help="dataset id or folder name (repeat for several)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=default_num_processes(),
                        help="worker processes that read files (default: %(default)s)")
    return parser


@exit_on_user_error("leafnet_verify")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for dataset in args.dataset:
        report = assert_dataset_ok(find_dataset(dataset), args.num_processes)
        print(report.format())
