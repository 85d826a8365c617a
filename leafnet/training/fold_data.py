"""What a trainer checks of its data before it builds anything: the fold's cases, from
splits_final.json checked as planning checks it, and preprocessed arrays that are complete,
readable and made from the raw dataset as it is now."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.models.fold_record import FoldSplit
from leafnet.planning.plans import SPLITS_FILE, plans_file
from leafnet.planning.splits import check_training_splits
from leafnet.preprocessing.case_preprocessing import CasePreprocessor
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import array_problem, case_paths
from leafnet.raw_format import CaseFiles, dataset_cases, find_dataset, load_dataset_json
from leafnet.preprocessing.preprocessed_data import PreprocessedCases
from leafnet.raw_format.locate import dataset_number
from leafnet.training.locate import preprocessed_dataset
from leafnet.utilities.json_files import read_json

PREPROCESS_FIX = "run leafnet_plan_and_preprocess"


def fold_split(folder: Path, plans: Plans, fold: int) -> FoldSplit:
    """Fold ``fold``'s train, val and test cases of the preprocessed dataset ``folder``, from
    splits_final.json checked as planning checks it (it may have been edited since)."""
    if not (folder / "dataset.json").is_file():
        raise LeafnetError(f"{folder} has no dataset.json copy: planning did not finish (it "
                           f"writes the copy last); run 'leafnet_plan_and_preprocess -d "
                           f"{dataset_number(folder.name)}' (it resumes)")
    training_ids, test_ids = case_ids(folder, plans)
    rule = load_dataset_json(folder).split
    splits = check_training_splits(folder / SPLITS_FILE, training_ids, test_ids, rule,
                                   PREPROCESS_FIX)
    folds = splits["folds"]
    if not 0 <= fold < len(folds):
        raise LeafnetError(f"fold {fold} does not exist; splits_final.json has "
                           f"{len(folds)} fold(s) (0..{len(folds) - 1})")
    return FoldSplit(folds[fold]["train"], folds[fold]["val"], splits.get("test", []))


def raw_cases(folder: Path) -> tuple[Path | None, dict[str, dict[str, CaseFiles]]]:
    """The raw dataset of the preprocessed dataset ``folder`` and its cases by subset
    (``Tr``, ``Ts``); ``(None, {})`` when the raw data moved away."""
    with contextlib.suppress(LeafnetError):
        raw = find_dataset(folder.name)
        description = load_dataset_json(raw)
        return raw, dataset_cases(raw, description.image_ending, description.file_ending)
    return None, {}


def case_ids(folder: Path, plans: Plans) -> tuple[list[str], list[str]]:
    """The dataset's training and test case ids: the raw dataset's, else (raw data moved
    away) those of the preprocessed arrays."""
    raw, cases = raw_cases(folder)
    if raw is not None:
        return sorted(cases.get("Tr", {})), sorted(cases.get("Ts", {}))
    subsets: dict[str, list[str]] = {"Tr": [], "Ts": []}
    for path in sorted((folder / plans.data_identifier).glob("*.json")):
        subset = read_json(path).get("subset")
        subsets.setdefault(subset, []).append(path.stem)
    return subsets["Tr"], subsets["Ts"]


def check_preprocessed(folder: Path, data: Path, plans: Plans, split: FoldSplit,
                       fold: int) -> None:
    """Refuse to train on a dataset whose preprocessing is unfinished, or whose raw dataset
    changed after planning (the plans and arrays would be stale)."""
    fix = f"run 'leafnet_plan_and_preprocess -d {dataset_number(folder.name)}'"
    missing = [case for case in split.train + split.val
               if not case_paths(data, case)["properties"].is_file()]
    if missing:
        raise LeafnetError(
            f"{data} lacks the preprocessed arrays of {len(missing)} cases of fold "
            f"{fold} (e.g. {', '.join(missing[:5])}): preprocessing did not finish; "
            f"{fix} (it resumes)")
    _refuse_cases(data, fold, "cannot be used", fix,
                  [(case, array_problem(data, case, plans.target_size))
                   for case in split.train + split.val])
    raw, subsets = raw_cases(folder)
    sources = {**subsets.get("Tr", {}), **subsets.get("Ts", {})}
    preprocessor = CasePreprocessor(plans, data)
    _refuse_cases(data, fold, "are not what the plans make of the raw files now", fix,
                  [(case, preprocessor.changed_input(case, sources.get(case)))
                   for case in split.train + split.val])
    if raw is None:
        return
    if (raw / "dataset.json").read_bytes() != (folder / "dataset.json").read_bytes():
        raise LeafnetError(
            f"{raw / 'dataset.json'} changed after planning ({folder} holds the planned "
            f"copy): the plans and arrays may be stale; {fix}")


def _refuse_cases(data: Path, fold: int, what: str, fix: str,
                  problems: list[tuple[str, str | None]]) -> None:
    """Refuse the fold when any of its cases has a problem, naming up to five of them."""
    found = [(case, problem) for case, problem in problems if problem]
    if found:
        shown = "; ".join(f"{case}: {problem}" for case, problem in found[:5])
        raise LeafnetError(
            f"{data}: the arrays of {len(found)} cases of fold {fold} {what} ({shown}); "
            f"nothing was trained or overwritten. {fix}: it preprocesses those cases again")


@dataclass
class FoldData:
    """A fold's data as training uses it: the preprocessed dataset folder, its plans (file and
    content), the fold's split and its training and validation cases."""

    folder: Path
    plans_path: Path
    plans: Plans
    split: FoldSplit
    train_cases: PreprocessedCases
    val_cases: PreprocessedCases


def load_fold(dataset: str | int, plans_name: str, fold: int) -> FoldData:
    """Fold ``fold`` of a preprocessed dataset under plans ``plans_name``, checked
    (:func:`fold_split`, :func:`check_preprocessed`) before anything is built."""
    folder = preprocessed_dataset(dataset)
    plans_path = folder / plans_file(plans_name)
    plans = Plans.load(plans_path, PREPROCESS_FIX)
    split = fold_split(folder, plans, fold)
    data = folder / plans.data_identifier
    check_preprocessed(folder, data, plans, split, fold)
    scheme = plans.label_scheme
    return FoldData(folder, plans_path, plans, split,
                    PreprocessedCases(data, split.train, scheme),
                    PreprocessedCases(data, split.val, scheme))
