"""splits_final.json: seeded, reproducible train/val/test splits from the dataset's rule.

The order of cases comes from sorting the ids by a SHA-256 digest of ``seed:case_id``: the same
on every machine and with every library version, and never the directory listing order.
A splits_final.json without ``"generated_by": "leafnet"`` is the user's: it is kept as it is,
after checking that every id exists and that no test case is trained or validated on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leafnet.errors import LeafnetError
from leafnet.paths import plain_name
from leafnet.utilities.json_files import read_json

DEFAULT_SEED = 12345
GENERATED_BY = "leafnet"


def seeded_order(case_ids: Sequence[str], seed: int) -> list[str]:
    """``case_ids`` in an order that depends only on the ids and ``seed``."""
    return sorted(case_ids, key=lambda case: hashlib.sha256(f"{seed}:{case}".encode()).hexdigest())


def _count(total: int, fraction: float) -> int:
    """Cases for a fraction: rounded, but at least one when the fraction is not zero."""
    if fraction <= 0 or total == 0:
        return 0
    return min(total, max(1, round(total * fraction)))


def make_splits(
    training_ids: Sequence[str], test_ids: Sequence[str], rule: dict[str, Any]
) -> dict[str, Any]:
    """Splits for ``rule`` (see dataset.json's ``leafnet_split``) over sorted case ids."""
    seed = rule.get("seed", DEFAULT_SEED)
    order = seeded_order(sorted(training_ids), seed)
    test: list[str] = sorted(test_ids)
    folds: list[dict[str, list[str]]]
    if rule["rule"] == "ratio":
        num_test = _count(len(order), rule.get("test", 0))
        num_val = min(_count(len(order), rule.get("val", 0)), len(order) - num_test)
        test = sorted(order[:num_test]) + test
        folds = [{"train": sorted(order[num_test + num_val:]),
                  "val": sorted(order[num_test:num_test + num_val])}]
    elif rule["rule"] == "official_test":
        if "val_cases" in rule:
            val = sorted(rule["val_cases"])
        else:
            val = sorted(order[:_count(len(order), rule.get("val", 0.1))])
        folds = [{"train": sorted(set(order) - set(val)), "val": val}]
    else:
        count = rule["folds"]
        folds = [{"train": sorted(set(order) - set(order[k::count])),
                  "val": sorted(order[k::count])} for k in range(count)]
    if any(not fold["train"] for fold in folds):
        raise LeafnetError(f"the split rule {rule} leaves no training cases for "
                           f"{len(training_ids)} cases; lower the val/test fractions")
    return {"generated_by": GENERATED_BY, "rule": rule, "seed": seed, "folds": folds,
            "test": test}


def check_splits(splits: Any, known_ids: set[str], path: Path) -> dict[str, Any]:
    """Validate a splits file (ours, or nnU-Net's list of folds) and return it as our dict."""
    if isinstance(splits, list):
        splits = {"folds": splits, "test": []}
    if not isinstance(splits, dict) or not isinstance(splits.get("folds"), list) \
            or not splits["folds"]:
        raise LeafnetError(f"{path}: expected {{\"folds\": [{{\"train\": [...], \"val\": [...]}}], "
                           "\"test\": [...]}} or nnU-Net's list of folds")
    folds = [fold for fold in splits["folds"] if isinstance(fold, dict)]
    for subset in [splits.get("test", [])] + [fold.get(k, []) for fold in folds
                                               for k in ("train", "val")]:
        for case_id in subset:
            plain_name(case_id, "case id", path)
    test = set(splits.get("test", []))
    unknown = sorted(test - known_ids)
    for index, fold in enumerate(splits["folds"]):
        if not isinstance(fold, dict) or not {"train", "val"} <= set(fold):
            raise LeafnetError(f"{path}: fold {index} needs 'train' and 'val' lists")
        members = set(fold["train"]) | set(fold["val"])
        unknown += sorted(members - known_ids)
        leaked = sorted(members & test)
        if leaked:
            raise LeafnetError(f"{path}: fold {index} trains or validates on test cases "
                               f"{leaked[:5]}; remove them from train/val")
    if unknown:
        raise LeafnetError(f"{path}: {len(unknown)} case ids do not exist in the dataset "
                           f"(e.g. {sorted(set(unknown))[:5]}); fix or delete the file")
    return splits


def load_or_make_splits(
    path: Path, training_ids: Sequence[str], test_ids: Sequence[str], rule: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The splits to use and whether they are the user's own (kept as they are)."""
    known = set(training_ids) | set(test_ids)
    existing = read_json(path)
    if existing is not None:
        user_supplied = not (isinstance(existing, dict)
                             and existing.get("generated_by") == GENERATED_BY)
        if user_supplied:
            return check_splits(existing, known, path), True
    return make_splits(training_ids, test_ids, rule), False
