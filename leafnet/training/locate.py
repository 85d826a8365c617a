"""Finding a dataset's preprocessed folder (a trainer's output folder: paths.trainer_output)."""

from __future__ import annotations

from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.paths import preprocessed_root
from leafnet.planning.plans import PLANS_FILE
from leafnet.raw_format import list_datasets, parse_dataset_id


def preprocessed_dataset(dataset: str | int) -> Path:
    """``leafnet_preprocessed/DatasetXXX_Name`` with plans, or an error naming the command."""
    number = parse_dataset_id(dataset)
    found = list_datasets(preprocessed_root()).get(number, [])
    if not found or not (found[0] / PLANS_FILE).is_file():
        raise LeafnetError(
            f"dataset {number:03d} has not been planned and preprocessed (nothing in "
            f"{preprocessed_root()}); run 'leafnet_plan_and_preprocess -d {number}' first"
        )
    return found[0]
