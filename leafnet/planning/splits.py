"""splits_final.json: seeded, reproducible train/val/test splits from the dataset's rule.

The order of cases comes from sorting the ids by a SHA-256 digest of ``seed:case_id``: the same
on every machine and with every library version, and never the directory listing order.
A splits_final.json without ``"generated_by": "leafnet"`` is the user's: it is kept as it is,
after checking that every id exists, that no test case (of its test list or of imagesTs) is
trained or validated on, that no fold validates on its training cases and that every fold
trains on something. Training checks the same again (:func:`check_training_splits`), since the
file may be edited after planning; a file leafnet wrote must still be the one its rule gives.
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


def check_splits(splits: Any, known_ids: set[str], path: Path,
                 test_ids: Sequence[str] = ()) -> dict[str, Any]:
    """Validate a splits file (ours, or nnU-Net's list of folds) and return it as our dict;
    ``test_ids`` (imagesTs) may not be trained or validated on either."""
    if isinstance(splits, list):
        splits = {"folds": splits, "test": []}
    if not isinstance(splits, dict) or not isinstance(splits.get("folds"), list) \
            or not splits["folds"] or not isinstance(splits.get("test", []), list):
        raise LeafnetError(f"{path}: expected {{\"folds\": [{{\"train\": [...], \"val\": [...]}}], "
                           "\"test\": [...]}} or nnU-Net's list of folds")
    _check_names(splits, path)
    test = set(splits.get("test", [])) | set(test_ids)
    unknown = sorted(set(splits.get("test", [])) - known_ids)
    for index, fold in enumerate(splits["folds"]):
        if not isinstance(fold, dict) or not {"train", "val"} <= set(fold) or not all(
                isinstance(fold[k], list) for k in ("train", "val")):
            raise LeafnetError(f"{path}: fold {index} needs 'train' and 'val' lists")
        members = set(fold["train"]) | set(fold["val"])
        unknown += sorted(members - known_ids)
        leaked = sorted(members & test)
        if leaked:
            raise LeafnetError(f"{path}: fold {index} trains or validates on test cases "
                               f"{leaked[:5]}; remove them from train/val")
        both = sorted(set(fold["train"]) & set(fold["val"]))
        if both:
            raise LeafnetError(f"{path}: fold {index} validates on {len(both)} of its training "
                               f"cases ({both[:5]}); a case belongs to train or to val")
        if not fold["train"]:
            raise LeafnetError(f"{path}: fold {index} has no training cases; add some")
    if unknown:
        raise LeafnetError(f"{path}: {len(unknown)} case ids do not exist in the dataset "
                           f"(e.g. {sorted(set(unknown))[:5]}); fix or delete the file")
    return splits


def _check_names(splits: dict[str, Any], path: Path) -> None:
    """Every case id of the file is a plain name (no path can be smuggled in)."""
    folds = [fold for fold in splits.get("folds", []) if isinstance(fold, dict)]
    for subset in [splits.get("test", [])] + [fold.get(k, []) for fold in folds
                                               for k in ("train", "val")]:
        for case_id in subset if isinstance(subset, list) else [subset]:
            plain_name(case_id, "case id", path)


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
            return check_splits(existing, known, path, test_ids), True
    return make_splits(training_ids, test_ids, rule), False


def check_training_splits(path: Path, training_ids: Sequence[str], test_ids: Sequence[str],
                          rule: dict[str, Any], fix: str) -> dict[str, Any]:
    """The splits as training may use them: the user's checked as planning checks them, and
    leafnet's own unchanged since planning wrote them (an edit made after planning is refused,
    ``fix`` naming how to re-plan)."""
    existing = read_json(path, fix)
    if isinstance(existing, dict) and existing.get("generated_by") == GENERATED_BY:
        _check_names(existing, path)
        expected = make_splits(training_ids, test_ids, rule)
        if existing.get("folds") != expected["folds"] or \
                sorted(existing.get("test", [])) != sorted(expected["test"]):
            raise LeafnetError(
                f"{path} is not the split its rule {rule} gives for this dataset's cases: it "
                f"was edited after planning, or the dataset changed. To keep your edits, "
                f"delete its \"generated_by\" line (it is then yours, and checked as such); "
                f"otherwise {fix}")
        return existing
    return check_splits(existing, set(training_ids) | set(test_ids), path, test_ids)
