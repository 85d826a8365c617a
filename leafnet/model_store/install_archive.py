"""``leafnet_install_model``: unpack a shared model where ``leafnet_predict`` finds it.

The archive is checked completely before anything is written (``archive_format``); it is then
unpacked into a hidden folder inside the results folder and its fold folders are renamed into
place, so an interrupted install leaves no half-written model. Folds already present are
refused unless ``overwrite`` is given, and even then a fold that was not installed (one trained
here, which has no ``INSTALLED_MARKER``) is never replaced. A model whose plans were made for
another dataset than the folder its manifest names is refused: its labels and preprocessing
would be applied under the wrong dataset id.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.model_store.archive_format import extract_archive
from leafnet.models.fold_record import FOLD_PLANS_FILE
from leafnet.paths import results_root
from leafnet.utilities.digests import file_digest
from leafnet.utilities.json_files import read_json

INSTALLED_MARKER = "installed_from.json"


def install_model(archive: Path, root: Path | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Install ``archive`` into ``root`` (LEAFNET_RESULTS by default); return the fold
    folders."""
    root = results_root() if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".leafnet_install_", dir=root) as scratch:
        model = extract_archive(archive, Path(scratch))
        sources = model.previous_stage_folders() + model.fold_folders()
        for source in sources:
            if not (source / FOLD_PLANS_FILE).is_file():
                raise LeafnetError(f"{archive}: the manifest lists {source.name}, but the archive "
                                   f"holds no {source.relative_to(model.root)}/plans.json; it "
                                   "is incomplete, export it again")
            planned = (read_json(source / FOLD_PLANS_FILE) or {}).get("dataset_name")
            if planned != model.manifest["dataset"]:
                raise LeafnetError(
                    f"{archive}: {source.relative_to(model.root)} was planned for dataset "
                    f"{planned}, but the manifest installs it under {model.manifest['dataset']}; "
                    "the archive was altered or packed from a moved folder. Export it again "
                    "from the results folder it was trained in")
        targets = [root / source.relative_to(model.root) for source in sources]
        present = [target for target in targets if target.exists()]
        if present and not overwrite:
            raise LeafnetError(f"{present[0]} exists; remove it or install with --overwrite")
        local = [target for target in present if not (target / INSTALLED_MARKER).is_file()]
        if local:
            raise LeafnetError(
                f"{local[0]} holds a fold that was not installed from an archive (trained "
                "here, or installed by an older leafnet); --overwrite replaces installed folds "
                "only. Move it away first, or install into another results folder "
                "(LEAFNET_RESULTS=DIR)")
        record = {"archive": str(archive.resolve()), "archive_sha256": file_digest(archive)}
        for source, target in zip(sources, targets, strict=True):
            write_json(source / INSTALLED_MARKER, record)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            source.rename(target)
    return targets
