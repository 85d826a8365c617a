"""nnU-Net's raw copy of a leafnet dataset for versus-nnunet: the split's train and validation
cases in imagesTr/labelsTr, the test cases in imagesTs, one dataset.json; either the files as
they are (JPEG re-encoded to PNG, which nnU-Net's 2D reader takes) or each image and label as
leafnet's plans preprocess them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from leafnet.atomic import write_json
from leafnet.imageio import read_image, write_image, write_label
from leafnet.inference.predict_cases import split_cases
from leafnet.models.fold_record import FoldSplit
from leafnet.preprocessing import normalize_to_uint8, resize_image, resize_label
from leafnet.preprocessing.plans import Plans
from leafnet.raw_format import CaseFiles, load_dataset_json, read_case


def _place(source: Path, target: Path, ending: str) -> None:
    """Link ``source`` as ``target``, or re-encode it when nnU-Net needs another file type
    (leafnet reads JPEG images; nnU-Net's 2D reader takes PNG): the pixels leafnet reads."""
    if target.exists():
        return
    if source.name.endswith(ending):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return
    image, properties = read_image(source)
    write_image(target, image, properties)


def _place_as_planned(case: CaseFiles, image_targets: list[Path], label_target: Path | None,
                      plans: Plans) -> tuple[int, int]:
    """Write what leafnet's preprocessing makes of ``case`` (the plans' intensity window to
    uint8, resized to the plans' size) as nnU-Net's files; return the original (H, W)."""
    image, label, properties = read_case(case)
    if all(path.exists() for path in image_targets) and (
            label_target is None or label_target.exists()):
        return int(image.shape[1]), int(image.shape[2])
    planned = resize_image(normalize_to_uint8(image, plans.windows), plans.target_size)
    per_file = np.split(planned, len(image_targets)) if len(image_targets) > 1 else [planned]
    for target, array in zip(image_targets, per_file, strict=True):
        write_image(target, array)
    if label_target is not None:
        write_label(label_target, resize_label(label, plans.target_size))
    return int(image.shape[1]), int(image.shape[2])


def write_nnunet_raw(raw: Path, split: FoldSplit, root: Path,
                     plans: Plans | None = None) -> tuple[Path, dict[str, list[int]]]:
    """nnU-Net's raw copy of ``raw``: train and validation cases in imagesTr/labelsTr, the test
    cases in imagesTs (what is predicted), one dataset.json. With ``plans``, every image and
    label as leafnet trains on it (resized to the plans' size, PNG). Return the dataset folder
    and the test images' original sizes (what predictions are mapped back to)."""
    description = load_dataset_json(raw)
    ending = ".png" if plans is not None else description.file_ending
    folder = root / raw.name
    cases = split_cases(raw, split.train + split.val + split.test)
    sizes: dict[str, list[int]] = {}
    for subset, ids in (("Tr", split.train + split.val), ("Ts", split.test)):
        (folder / f"images{subset}").mkdir(parents=True, exist_ok=True)
        if subset == "Tr":
            (folder / "labelsTr").mkdir(exist_ok=True)
        for case_id in tqdm(ids, desc=f"nnU-Net raw copy, images{subset}"):
            case = cases[case_id]
            images = [folder / f"images{subset}" / f"{case_id}_{channel:04d}{ending}"
                      for channel in range(len(case.images))]
            label = folder / "labelsTr" / f"{case_id}{ending}" if subset == "Tr" else None
            if plans is not None:
                size = _place_as_planned(case, images, label, plans)
                if subset == "Ts":
                    sizes[case_id] = list(size)
                continue
            for source, target in zip(case.images, images, strict=True):
                _place(source, target, ending)
            if label is not None:
                _place(case.label, label, ending)
    written = description.to_json()
    write_json(folder / "dataset.json", {
        "channel_names": description.channel_names, "labels": written["labels"],
        "numTraining": len(split.train) + len(split.val), "file_ending": ending,
        **{key: written[key] for key in ("regions_class_order",) if key in written}})
    return folder, sizes
