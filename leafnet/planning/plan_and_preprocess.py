"""``leafnet_plan_and_preprocess``'s work, in order: verify, fingerprint, plans, splits, preprocess.

Files under ``leafnet_preprocessed/DatasetXXX_Name/``:

- ``dataset.json`` (a copy), ``dataset_fingerprint.json``, ``leafnet_plans.json``,
  ``splits_final.json``
- ``<data_identifier>/CASE.npy``, ``CASE_seg.npy``, ``CASE.json`` for every case of imagesTr and
  imagesTs
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.atomic import copy_file, write_json
from leafnet.imageio import read_label
from leafnet.models.presets import PRESETS
from leafnet.models.shipped_autoencoder import load_shipped_autoencoder, plans_by_ceiling
from leafnet.planning.ceiling import CEILING_CASES
from leafnet.paths import preprocessed_root
from leafnet.planning.fingerprint import (
    FINGERPRINT_VERSION,
    CaseStatisticsTask,
    build_fingerprint,
)
from leafnet.planning.plans import (
    DEFAULT_PRESET,
    PLANS_FILE,
    SPLITS_FILE,
    check_plan_options,
    check_plans_match,
    given_size_rule,
    make_plans,
    make_crop_stage_plans,
    plans_file,
)
from leafnet.planning.stages import CROP_STAGE_PLANS_NAME, plan_stages
from leafnet.planning.splits import GENERATED_BY, load_or_make_splits
from leafnet.preprocessing.case_preprocessing import CasePreprocessor
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import case_paths, load_preprocessed_case
from leafnet.raw_format import (
    CaseFiles,
    DatasetDescription,
    dataset_cases,
    find_dataset,
    load_dataset_json,
    source_signature,
)
from leafnet.utilities.json_files import read_json
from leafnet.utilities.parallel import parallel_map
from leafnet.utilities.picks import evenly_spaced
from leafnet.utilities.processes import folder_lock, process_alive
from leafnet.verification import assert_dataset_ok

FINGERPRINT_FILE = "dataset_fingerprint.json"


@dataclass
class PlanningResult:
    """Where everything went and how much preprocessing work was done or skipped."""

    folder: Path
    plans: Plans
    crop_stage: Plans | None
    splits: dict[str, Any]
    user_splits: bool
    processed: int
    skipped: int
    removed: int
    notes: list[str]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _clean(folder: Path) -> None:
    """Remove what planning generated, by name: the plans' case arrays and the plans,
    fingerprint and dataset.json copy; a user's own splits_final.json and any file leafnet did
    not write stay."""
    if not folder.is_dir():
        return
    for name in (PLANS_FILE, plans_file(CROP_STAGE_PLANS_NAME)):
        plans = Plans.load(folder / name)
        if plans is None:
            continue
        data_folder = folder / plans.data_identifier
        if data_folder.is_dir():
            _remove_stale_cases(data_folder, set())
            with contextlib.suppress(OSError):
                data_folder.rmdir()
    splits = read_json(folder / SPLITS_FILE)
    generated = [PLANS_FILE, plans_file(CROP_STAGE_PLANS_NAME), FINGERPRINT_FILE, "dataset.json"]
    if isinstance(splits, dict) and splits.get("generated_by") == GENERATED_BY:
        generated.append(SPLITS_FILE)
    for name in generated:
        (folder / name).unlink(missing_ok=True)


def plan_and_preprocess(
    dataset: str | int,
    num_processes: int | None = None,
    clean: bool = False,
    preset: str | None = None,
    target_size: tuple[int, int] | None = None,
    show_progress: bool = True,
    output_root: Path | None = None,
    label_names: list[str] | None = None,
) -> PlanningResult:
    """Verify, fingerprint, plan, split and preprocess one raw dataset.

    Existing plans are kept (they may hold the user's edits) except for ``preset``,
    ``target_size`` and ``label_names`` (the labels or regions trained) when given; a new
    preset brings its own target size unless ``target_size`` says otherwise. Cases whose arrays
    are up to date are skipped, so an interrupted run resumes and a repeated run is nearly
    free; ``clean`` starts over.
    ``output_root`` replaces LEAFNET_PREPROCESSED (benchmarks write to a scratch folder).
    """
    raw_folder = find_dataset(dataset)
    check_plan_options(preset or DEFAULT_PRESET, target_size)
    assert_dataset_ok(raw_folder, num_processes, show_progress)
    description = load_dataset_json(raw_folder)
    cases = dataset_cases(raw_folder, description.image_ending, description.file_ending)
    training, test = cases.get("Tr", {}), cases.get("Ts", {})

    folder = (output_root or preprocessed_root()) / raw_folder.name
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, "leafnet_plan_and_preprocess"):
        if clean:
            _clean(folder)
        return _plan_locked(raw_folder, folder, description, training, test, num_processes,
                            preset, target_size, show_progress, label_names)


def _plan_locked(raw_folder: Path, folder: Path, description: DatasetDescription,
                 training: dict[str, CaseFiles], test: dict[str, CaseFiles],
                 num_processes: int | None, preset: str | None,
                 target_size: tuple[int, int] | None, show_progress: bool,
                 label_names: list[str] | None = None) -> PlanningResult:
    """The planning steps after verification, while this process holds the folder's lock.
    The copy of dataset.json is written last: it says which dataset.json the plans and arrays
    were made from, so a refused or interrupted run leaves the old one (training compares it)."""

    signature = _digest({case_id: source_signature(case) for case_id, case in training.items()})
    fingerprint = read_json(folder / FINGERPRINT_FILE)
    if fingerprint is None or fingerprint.get("source_signature") != signature or (
            fingerprint.get("version") != FINGERPRINT_VERSION):
        statistics = parallel_map(CaseStatisticsTask(len(description.labels)), training.values(),
                                  num_processes, f"fingerprinting {raw_folder.name}",
                                  show_progress)
        fingerprint = build_fingerprint(description, statistics, len(test))
        fingerprint["source_signature"] = signature
        write_json(folder / FINGERPRINT_FILE, fingerprint)

    existing = Plans.load(folder / PLANS_FILE)
    if existing is not None:
        check_plans_match(existing, description, folder / PLANS_FILE)
        content = dict(existing.json)
    else:
        measured = target_size is None and plans_by_ceiling(preset or DEFAULT_PRESET)
        content = make_plans(raw_folder.name, description, fingerprint,
                             preset or DEFAULT_PRESET, target_size, label_names,
                             ceiling_labels(training) if measured else None)
    if existing is not None and target_size is not None:
        content["target_size_rule"] = given_size_rule(target_size)
        content.pop("next_stage", None)
    elif existing is not None and preset is not None and preset != content["preset"]:
        measured = plans_by_ceiling(preset)
        stages = plan_stages(fingerprint, existing.label_scheme, PRESETS[preset].target_size,
                             labels=ceiling_labels(training) if measured else None,
                             autoencoder=load_shipped_autoencoder(preset) if measured else None)
        target_size = stages.target_size
        content["target_size_rule"] = stages.rule
        content.pop("next_stage", None)
        if stages.next_stage is not None:
            content["next_stage"] = stages.next_stage.to_json()
    if preset is not None:
        content["preset"] = preset
    if target_size is not None:
        content["target_size"] = list(target_size)
        content["data_identifier"] = f"{content['plans_name']}_{target_size[0]}x{target_size[1]}"
    if label_names is not None:
        content["label_handling"] = make_plans(
            raw_folder.name, description, fingerprint, content["preset"],
            tuple(content["target_size"]), label_names)["label_handling"]
    plans = Plans.from_json(content, folder / PLANS_FILE)
    write_json(folder / PLANS_FILE, content)

    splits, user_splits = load_or_make_splits(folder / SPLITS_FILE, sorted(training),
                                              sorted(test), description.split)
    if not user_splits:
        write_json(folder / SPLITS_FILE, splits)

    items = [("Tr", case) for case in training.values()] + [("Ts", c) for c in test.values()]
    outcomes, removed = _preprocess(plans, folder, items, num_processes, raw_folder.name,
                                    show_progress)
    remedy = (f"the crop stage, {plans.next_stage.plans}, segments them in crops around the "
              "structure" if plans.next_stage is not None else None)
    notes = resampling_notes(folder / plans.data_identifier, sorted(training) + sorted(test),
                             plans, *([remedy] if remedy else []))
    crop_stage = None
    crop_path = folder / plans_file(plans.next_stage.plans if plans.next_stage
                                    else CROP_STAGE_PLANS_NAME)
    if plans.next_stage is not None:
        previous = Plans.load(crop_path)
        changed = target_size is not None or preset is not None or label_names is not None
        crop_content = (make_crop_stage_plans(plans) if previous is None or changed
                        else previous.json)
        crop_stage = Plans.from_json(crop_content, crop_path)
        write_json(crop_path, crop_content)
        more, more_removed = _preprocess(crop_stage, folder, items, num_processes,
                                         f"{raw_folder.name} (crops)", show_progress)
        outcomes, removed = outcomes + more, removed + more_removed
    elif crop_path.is_file():
        notes.append(f"{crop_path.name} is left from earlier two-stage plans; these plans are one "
                     "stage (--clean removes it)")
    if "classes" not in content["label_handling"] and len(description.labels) > 2:
        notes.append(f"these plans (written by an older leafnet) train "
                     f"{plans.label_scheme.describe()}; re-plan with --labels NAME ... (or "
                     "--clean) to train each label")
    copy_file(raw_folder / "dataset.json", folder / "dataset.json")
    return PlanningResult(folder, plans, crop_stage, splits, user_splits, outcomes.count("done"),
                          outcomes.count("skipped"), removed, notes)


def ceiling_labels(training: dict[str, CaseFiles]) -> list[np.ndarray]:
    """The labels of up to ``CEILING_CASES`` training cases, evenly spaced over their sorted
    ids, that planning measures candidate plans on (ceiling.py)."""
    picked = evenly_spaced(sorted(training), CEILING_CASES)
    return [read_label(training[case_id].label)[0] for case_id in picked
            if training[case_id].label is not None]


def _preprocess(plans: Plans, folder: Path, items: list[tuple[str, CaseFiles]],
                num_processes: int | None, what: str, show_progress: bool) -> tuple[list[str], int]:
    """Preprocess ``items`` into the plans' data folder; the outcomes and the number of stale
    cases removed."""
    data_folder = folder / plans.data_identifier
    data_folder.mkdir(exist_ok=True)
    outcomes = parallel_map(CasePreprocessor(plans, data_folder), items, num_processes,
                            f"preprocessing {what}", show_progress)
    removed = _remove_stale_cases(data_folder, {case.case_id for _, case in items})
    return outcomes, removed


SMALL_LABEL_FRACTION = 0.01


def resampling_notes(data_folder: Path, case_ids: list[str], plans: Plans,
                     remedy: str = "a larger --target-size keeps more of them") -> list[str]:
    """What resampling to the target size does to this dataset, in words: non-square images
    stretched to a square target, and labels that cover under 1% of a resized case (with
    ``remedy``, what keeps them)."""
    height, width = plans.target_size
    stretched, small = [], {}
    for case_id in case_ids:
        case = load_preprocessed_case(data_folder, case_id)
        box = case.properties.get("crop_box")
        original = ([box[2] - box[0], box[3] - box[1]] if box
                    else case.properties["original_size_hw"])
        if abs(original[0] / original[1] - height / width) > 0.01 * height / width:
            stretched.append((case_id, original))
        if case.label is None:
            continue
        counts = np.bincount(np.asarray(case.label).ravel())
        for value in np.flatnonzero(counts[1:]) + 1:
            if counts[value] / case.label.size < SMALL_LABEL_FRACTION:
                small.setdefault(int(value), []).append(case_id)
    notes = []
    if stretched:
        case_id, (h, w) = stretched[0]
        notes.append(f"{len(stretched)} of {len(case_ids)} images have another aspect ratio than "
                     f"the target {height}x{width} (e.g. {case_id}: {h}x{w}); they are stretched "
                     "to it (aspect ratio not kept) and predictions are mapped back to the "
                     "original size")
    names = {value: name for name, value in plans.labels.items()}
    for value, cases in sorted(small.items()):
        notes.append(f"label {names.get(value, value)} covers under {SMALL_LABEL_FRACTION:.0%} of "
                     f"the pixels after resizing to {height}x{width} in {len(cases)} cases (e.g. "
                     f"{', '.join(cases[:3])}); such small objects may be lost at this size "
                     f"({remedy})")
    return notes


_TEMPORARY = re.compile(r"^\..*\.tmp-(\d+)-[0-9a-f]{8}")


def _remove_stale_cases(data_folder: Path, case_ids: set[str]) -> int:
    """Delete the files of cases that are no longer in the raw dataset, and temporaries of
    writers that no longer run. Only leafnet's own files go, by their exact names: a case is
    leafnet's when its ``CASE.json`` is a preprocessed-case record; anything else stays."""
    removed = 0
    for path in sorted(data_folder.iterdir()):
        temporary = _TEMPORARY.match(path.name)
        if temporary is not None:
            if not process_alive(int(temporary.group(1))):
                path.unlink(missing_ok=True)
            continue
        if path.name.startswith(".") or not path.name.endswith(".json"):
            continue
        case_id = path.name[:-len(".json")]
        if case_id in case_ids or not _is_case_record(path):
            continue
        for file in case_paths(data_folder, case_id).values():
            file.unlink(missing_ok=True)
        removed += 1
    return removed


def _is_case_record(path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and record.get("case_id") == path.name[:-len(".json")] \
        and "plans_hash" in record
