"""Predicting a folder of images: grouping channel files, writing labels at the input's size
and format, skipping finished outputs, and reporting bad inputs without stopping."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from leafnet.atomic import atomic_path, write_json
from leafnet.errors import LeafnetError
from leafnet.imageio import (
    IMAGE_ENDINGS,
    LOSSY_ENDINGS,
    ImageProperties,
    file_ending,
    read_image,
    strip_ending,
    write_label,
)
from leafnet.inference.segmenter import Segmenter
from leafnet.utilities.json_files import read_json

PREDICTION_RECORD = "prediction_record.json"
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class InputCase:
    case_id: str
    files: list[Path]

    @property
    def output_ending(self) -> str:
        """The input's format, except JPEG (labels are lossless): PNG then."""
        ending = file_ending(self.files[0])
        return ".png" if ending in LOSSY_ENDINGS else ending


@dataclass
class FolderResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    note: str = ""


def input_cases(folder: Path, num_channels: int) -> list[InputCase]:
    """Raw naming or plain image files. Files ``CASE_0000 .. CASE_000k`` are grouped as the
    channel files of one case only when they are numbered from 0000 without gaps and are no more
    than the model's ``num_channels``; any other file (``scan_0032.png``) is a case of its own,
    named by its whole stem."""
    if not folder.is_dir():
        raise LeafnetError(f"{folder}: no such input folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and file_ending(p) in IMAGE_ENDINGS)
    if not files:
        raise LeafnetError(f"{folder}: no images ({', '.join(IMAGE_ENDINGS)}) found")
    candidates: dict[str, dict[int, Path]] = {}
    for path in files:
        match = _CHANNEL.match(strip_ending(path.name))
        if match:
            candidates.setdefault(match.group("case"), {})[int(match.group("channel"))] = path
    cases: dict[str, list[Path]] = {}
    for case, channels in candidates.items():
        if sorted(channels) == list(range(len(channels))) and len(channels) <= num_channels:
            cases[case] = [channels[index] for index in sorted(channels)]
    grouped = {path for paths in cases.values() for path in paths}
    for path in files:
        if path not in grouped:
            cases.setdefault(strip_ending(path.name), []).append(path)
    return [InputCase(case, paths) for case, paths in sorted(cases.items())]


def check_output_folder(input_folder: Path, output_folder: Path, cases: list[InputCase]) -> None:
    """Refuse an output that is a file, the input folder itself (labels written among the images
    would be read as images by every later run on it), or whose labels would overwrite an input
    image."""
    if output_folder.exists() and not output_folder.is_dir():
        raise LeafnetError(f"-o {output_folder}: is a file; give a folder for the predictions")
    if output_folder.resolve() == input_folder.resolve():
        raise LeafnetError(f"-o {output_folder} is the input folder -i {input_folder}: the "
                           "labels would be written among the images; choose another folder")
    inputs = {path.resolve() for case in cases for path in case.files}
    clashes = [case.files[0] for case in cases
               if (output_folder / f"{case.case_id}{case.output_ending}").resolve() in inputs]
    if clashes:
        raise LeafnetError(
            f"-o {output_folder}: predictions would overwrite input images (e.g. {clashes[0]}); "
            f"choose an output folder other than the input folder {input_folder}")


def _read(case: InputCase) -> tuple[np.ndarray, ImageProperties]:
    arrays, properties = zip(*(read_image(path) for path in case.files), strict=True)
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        raise LeafnetError(f"channel files of {case.case_id} differ in size: {sorted(shapes)}")
    return np.concatenate(arrays), properties[0]


def predict_folder(predictor: Segmenter, input_folder: Path, output_folder: Path,
                   seed: int = 0, num_samples: int = 1, save_probabilities: bool = False,
                   continue_prediction: bool = False, show_progress: bool = True,
                   save_uncertainty: bool = False,
                   identity: dict[str, Any] | None = None) -> FolderResult:
    """Predict every case of ``input_folder`` into ``output_folder``, in device batches of the
    predictor's batch size; optionally with ``CASE.npz`` (probabilities) and
    ``CASE_uncertainty.npz`` (their standard deviation over folds and noise samples).
    ``identity`` (the model's weights digests and the settings that change a prediction) is
    recorded in ``prediction_record.json`` at the end of the run (an interrupted run leaves
    none; a case that fails leaves no files of an earlier run); ``continue_prediction`` skips a
    case only when all its asked-for files are there and were made under the same identity,
    else it predicts every case again and says why in ``FolderResult.note``."""
    cases = input_cases(input_folder, predictor.plans.num_channels)
    check_output_folder(input_folder, output_folder, cases)
    output_folder.mkdir(parents=True, exist_ok=True)
    result = FolderResult()
    record = output_folder / PREDICTION_RECORD
    if continue_prediction and identity is not None and read_json(record) != identity:
        continue_prediction = False
        result.note = (f"the predictions in {output_folder} were made by another model or "
                       f"other settings ({record.name} differs or is missing): every case is "
                       "predicted again")
    record.unlink(missing_ok=True)
    class_names = [item.name for item in predictor.plans.label_scheme.classes]
    members = len(predictor.members) * num_samples
    if save_uncertainty and members < 2:
        raise LeafnetError("--save_uncertainty needs several members: give several folds "
                           "(-f 0 1 2 ...) or --num_samples K with K >= 2")
    pending: list[tuple[InputCase, Path, np.ndarray, ImageProperties]] = []

    def flush() -> None:
        predictions = predictor.predict([item[2] for item in pending], seed, num_samples,
                                        uncertainty=save_uncertainty)
        for (case, target, _, properties), prediction in zip(pending, predictions, strict=True):
            write_label(target, prediction.label, properties)
            if save_probabilities:
                with atomic_path(output_folder / f"{case.case_id}.npz") as temporary:
                    np.savez_compressed(temporary, probabilities=prediction.probability,
                                        classes=np.array(class_names))
            if save_uncertainty:
                with atomic_path(output_folder / f"{case.case_id}_uncertainty.npz") as temporary:
                    np.savez_compressed(temporary, uncertainty=prediction.uncertainty,
                                        classes=np.array(class_names),
                                        members=np.array(members))
            result.written.append(target)
        pending.clear()

    for case in tqdm(cases, desc="predicting", disable=not show_progress):
        target = output_folder / f"{case.case_id}{case.output_ending}"
        wanted = [target] + [output_folder / f"{case.case_id}{suffix}" for suffix, asked in
                             ((".npz", save_probabilities),
                              ("_uncertainty.npz", save_uncertainty)) if asked]
        if continue_prediction and all(path.is_file() for path in wanted):
            result.skipped.append(target)
            continue
        try:
            image, properties = _read(case)
            predictor.check_image(image)
        except LeafnetError as error:
            result.failed[case.case_id] = str(error)
            if not continue_prediction:  # an earlier run's files of it are not this run's
                for path in wanted:
                    path.unlink(missing_ok=True)
            continue
        pending.append((case, target, image, properties))
        if len(pending) == predictor.batch_size:
            flush()
    if pending:
        flush()
    if identity is not None:
        write_json(record, identity)
    return result
