"""Preprocessing one case: read, (for a crop stage's plans) crop around the foreground, normalise,
resample, write atomically; skip it if up to date (same plans and source files, and arrays that
open at the planned size: a damaged or deleted array is preprocessed again)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from leafnet.atomic import atomic_path, write_json
from leafnet.preprocessing.normalization import normalize_to_uint8
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import array_problem, case_paths
from leafnet.preprocessing.resampling import resize_image, resize_label
from leafnet.preprocessing.roi_crop import case_generator, crop, roi_crop_box
from leafnet.raw_format import CaseFiles, read_case, source_signature


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        np.save(temporary, array)


class CasePreprocessor:
    """Picklable worker: ``(subset, case)`` -> ``"done"`` or ``"skipped"`` (already up to date)."""

    def __init__(self, plans: Plans, output: Path) -> None:
        self.plans = plans
        self.plans_hash = plans.preprocessing_hash()
        self.output = output

    def changed_input(self, case_id: str, case: CaseFiles | None) -> str | None:
        """Why the arrays of ``case_id`` are not what these plans make of ``case``'s files as
        they are now, in words (None when they are, as far as its CASE.json tells): not
        preprocessed, made under other plans (an edited size, intensity window or crop), or
        from other source files (an image or label changed after planning; not compared
        without ``case``, the raw data moved away). Cheap: one JSON file and a stat per file."""
        paths = case_paths(self.output, case_id)
        if not paths["properties"].is_file():
            return "not preprocessed"
        try:
            properties = json.loads(paths["properties"].read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "its CASE.json is unreadable"
        if properties.get("plans_hash") != self.plans_hash:
            return "made under other plans (size, intensity window or crop edited since)"
        if case is not None and properties.get("source_files") != source_signature(case):
            return "made from other source files (changed after planning)"
        return None

    def is_up_to_date(self, case: CaseFiles) -> bool:
        return (self.changed_input(case.case_id, case) is None
                and array_problem(self.output, case.case_id, self.plans.target_size) is None)

    def __call__(self, item: tuple[str, CaseFiles]) -> str:
        subset, case = item
        if self.is_up_to_date(case):
            return "skipped"
        paths = case_paths(self.output, case.case_id)
        paths["properties"].unlink(missing_ok=True)
        image, label, image_properties = read_case(case)
        original_hw = [int(image.shape[1]), int(image.shape[2])]
        box = None
        roi = self.plans.previous_stage
        if roi is not None and label is not None:
            box = roi_crop_box(label, roi.margin,
                               case_generator(case.case_id) if roi.jitter else None)
            image, label = crop(image, box), crop(label, box)
        size = self.plans.target_size
        _save_array(paths["image"], resize_image(normalize_to_uint8(image, self.plans.windows),
                                                 size))
        if label is not None:
            _save_array(paths["label"], resize_label(label, size).astype(np.uint8))
        write_json(paths["properties"], {
            "case_id": case.case_id,
            "subset": subset,
            "original_size_hw": original_hw,
            "crop_box": box.to_json() if box is not None else None,
            "preprocessed_size_hw": list(size),
            "has_label": label is not None,
            "image_properties": [p.to_json() for p in image_properties],
            "source_files": source_signature(case),
            "plans_hash": self.plans_hash,
        })
        return "done"
