"""``leafnet_install_model``: unpack a shared model where ``leafnet_predict`` finds it.

The archive is checked completely before anything is written (``archive_format``); it is then
unpacked into a hidden folder inside the results folder and its fold folders are renamed into
place, so an interrupted install leaves no half-written model. Folds already present are
refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.model_store.archive_format import extract_archive
from leafnet.paths import results_root


def install_model(archive: Path, root: Path | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Install ``archive`` into ``root`` (LEAFNET_RESULTS by default); return the fold
    folders."""
    root = results_root() if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".leafnet_install_", dir=root) as scratch:
        model = extract_archive(archive, Path(scratch))
        sources = model.fold_folders()
        targets = [root / source.relative_to(model.root) for source in sources]
        present = [target for target in targets if target.exists()]
        if present and not overwrite:
            raise LeafnetError(f"{present[0]} exists; remove it or install with --overwrite")
        for source, target in zip(sources, targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            source.rename(target)
    return targets
