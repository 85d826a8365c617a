"""Predicting a folder of images: grouping channel files, writing labels at the input's size
and format, skipping finished outputs, and reporting bad inputs without stopping."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from leafnet.atomic import atomic_path
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
from leafnet.inference.predictor import LEAFPredictor

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


def input_cases(folder: Path) -> list[InputCase]:
    """Raw naming (``CASE_0000.png``, channel files grouped) or plain image files."""
    if not folder.is_dir():
        raise LeafnetError(f"{folder}: no such input folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and file_ending(p) in IMAGE_ENDINGS)
    if not files:
        raise LeafnetError(f"{folder}: no images ({', '.join(IMAGE_ENDINGS)}) found")
    grouped: dict[str, list[Path]] = {}
    for path in files:
        match = _CHANNEL.match(strip_ending(path.name))
        case = match.group("case") if match else strip_ending(path.name)
        grouped.setdefault(case, []).append(path)
    return [InputCase(case, paths) for case, paths in grouped.items()]


def _read(case: InputCase) -> tuple[np.ndarray, ImageProperties]:
    arrays, properties = zip(*(read_image(path) for path in case.files), strict=True)
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        raise LeafnetError(f"channel files of {case.case_id} differ in size: {sorted(shapes)}")
    return np.concatenate(arrays), properties[0]


def predict_folder(predictor: LEAFPredictor, input_folder: Path, output_folder: Path,
                   seed: int = 0, num_samples: int = 1, save_probabilities: bool = False,
                   continue_prediction: bool = False, show_progress: bool = True) -> FolderResult:
    """Predict every case of ``input_folder`` into ``output_folder``, in device batches of the
    predictor's batch size."""
    cases = input_cases(input_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    result = FolderResult()
    pending: list[tuple[InputCase, Path, np.ndarray, ImageProperties]] = []

    def flush() -> None:
        predictions = predictor.predict([item[2] for item in pending], seed, num_samples)
        for (case, target, _, properties), prediction in zip(pending, predictions, strict=True):
            write_label(target, prediction.label, properties)
            if save_probabilities:
                with atomic_path(output_folder / f"{case.case_id}.npz") as temporary:
                    np.savez_compressed(temporary, probabilities=prediction.probability)
            result.written.append(target)
        pending.clear()

    for case in tqdm(cases, desc="predicting", disable=not show_progress):
        target = output_folder / f"{case.case_id}{case.output_ending}"
        if continue_prediction and target.is_file():
            result.skipped.append(target)
            continue
        try:
            image, properties = _read(case)
            predictor.check_image(image)
        except LeafnetError as error:
            result.failed[case.case_id] = str(error)
            continue
        pending.append((case, target, image, properties))
        if len(pending) == predictor.batch_size:
            flush()
    if pending:
        flush()
    return result
