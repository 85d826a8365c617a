"""``leafnet_export_model``: one trained model's folds as a zip that holds no pickles.

nnU-Net shares models as zips of the results folder (``nnUNetv2_export_model_to_zip``); ours
holds only what prediction needs and what tells a user how good the model is: the exported
networks (safetensors + JSON config, the ONNX file and fast decoder when made), the plans,
dataset.json, the split and the validation / test summaries. See ``archive_format`` for the
layout and the rules an installer checks. An ONNX file or fast decoder made from other weights
than the ones exported is refused (models/derived_files.py), never shipped.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

from leafnet.atomic import atomic_path
from leafnet.errors import LeafnetError
from leafnet.model_store.archive_format import (
    ALLOWED_ENDINGS,
    ARCHIVE_FORMAT,
    MANIFEST,
    sha256,
)
from leafnet.model_store.discovery import stage_folders
from leafnet.model_store.onnx_export import onnx_file, onnx_record
from leafnet.models.fast_decoder import FAST_DECODER_FOLDER, check_fast_decoder
from leafnet.models.fold_record import (
    FOLD_DATASET_FILE,
    FOLD_RECORD_FILE,
    FOLD_PLANS_FILE,
    FOLD_SPLIT_FILE,
    check_model,
)
from leafnet.models.network import WEIGHTS_FILE, model_folder
from leafnet.paths import parse_run_folder_name

FOLD_FILES = (FOLD_PLANS_FILE, FOLD_DATASET_FILE, FOLD_SPLIT_FILE, FOLD_RECORD_FILE,
              "validation/summary.json", "test/summary.json")


def _check_decoder_for_a_checkpoint(fold_folder: Path, checkpoints: Sequence[str]) -> None:
    """Refuse a fast decoder made for none of the checkpoints shipped (prediction refuses it
    beside any other checkpoint)."""
    errors = []
    for checkpoint in checkpoints:
        try:
            check_fast_decoder(fold_folder, model_folder(fold_folder, checkpoint))
            return
        except LeafnetError as error:
            errors.append(error)
    raise errors[0]


def _fold_files(fold_folder: Path, checkpoints: Sequence[str]) -> list[Path]:
    files = [fold_folder / name for name in FOLD_FILES if (fold_folder / name).is_file()]
    if not (fold_folder / FOLD_PLANS_FILE).is_file():
        raise LeafnetError(f"{fold_folder} has no plans.json: not a trained leafnet model")
    for checkpoint in checkpoints:
        folder = model_folder(fold_folder, checkpoint)
        if not (folder / WEIGHTS_FILE).is_file():
            raise LeafnetError(f"{fold_folder} has no exported {checkpoint} model "
                               f"({folder.name}/{WEIGHTS_FILE}); finish its training, or "
                               "export other checkpoints with -chk")
        check_model(fold_folder, checkpoint)
        for fast in (False, True):
            if onnx_file(folder, fast).is_file():
                onnx_record(folder, fast)
        files += sorted(p for p in folder.iterdir() if p.name.endswith(ALLOWED_ENDINGS))
    decoder = fold_folder / FAST_DECODER_FOLDER
    if decoder.is_dir():
        _check_decoder_for_a_checkpoint(fold_folder, checkpoints)
        files += sorted(p for p in decoder.iterdir() if p.name.endswith(ALLOWED_ENDINGS))
    return files


def export_model(fold_folders: Sequence[Path], output: Path,
                 checkpoints: Sequence[str] = ("best",)) -> Path:
    """Write the zip of ``fold_folders`` (folds of one model, with those of the stages before
    it when it is a crop stage) to ``output``, atomically; return it."""
    if not fold_folders:
        raise LeafnetError("no folds to export")
    runs = {folder.parent for folder in fold_folders}
    if len(runs) != 1:
        raise LeafnetError("export the folds of one model at a time")
    run = fold_folders[0].parent
    if parse_run_folder_name(run.name) is None or not run.parent.name.startswith("Dataset"):
        raise LeafnetError(f"{run} is not a leafnet results folder "
                           "(DatasetXXX_Name/TRAINER__PLANS__PRESET)")
    base = run.parent.parent
    stages = stage_folders(fold_folders)
    files = {path.relative_to(base).as_posix(): path
             for folders in stages for folder in folders
             for path in _fold_files(folder, checkpoints)}
    digests = {name: sha256(path.read_bytes()) for name, path in files.items()}
    trainer, plans, preset = parse_run_folder_name(run.name)
    manifest = {"format": "leafnet-model", "version": ARCHIVE_FORMAT, "dataset": run.parent.name,
                "run": run.name, "trainer": trainer, "plans": plans, "preset": preset,
                "folds": sorted(int(f.name.removeprefix("fold_")) for f in fold_folders),
                "checkpoints": list(checkpoints), "files": digests}
    if len(stages) > 1:
        manifest["previous_runs"] = [folders[0].parent.name for folders in stages[:-1]]
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
            for name, path in files.items():
                bundle.write(path, name)
    return output
