"""Downloading original weight files: progress bar, SHA-256 check, atomic rename."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tqdm import tqdm

from leafnet.atomic import atomic_path
from leafnet.errors import LeafnetError
from leafnet.models.weights.remote import RemoteFile
from leafnet.models.weights.sources import SOURCES, install
from leafnet.paths import weights_root

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(remote: RemoteFile, folder: Path, show_progress: bool = True) -> Path:
    """``remote`` into ``folder`` (kept for reuse); an existing file is checked, not refetched."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / remote.filename
    if not path.is_file():
        try:
            with urllib.request.urlopen(remote.url, timeout=60) as response, \
                    atomic_path(path) as temporary, open(temporary, "wb") as handle:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename,
                          disable=not show_progress) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        handle.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError) as error:
            raise LeafnetError(
                f"could not download {remote.url} ({error}). Without internet, download it "
                "elsewhere and use 'leafnet_weights import NAME FILE...'"
            ) from error
    if remote.sha256 is not None:
        actual = sha256_of(path)
        if actual != remote.sha256:
            path.unlink()
            raise LeafnetError(f"{remote.filename}: SHA-256 {actual} does not match the "
                               f"published {remote.sha256}; the download was removed, try again")
    return path


def fetch(name: str, trust_pickle: bool = False, remote_files: list[RemoteFile] | None = None,
          show_progress: bool = True, options: dict[str, Any] | None = None) -> Path:
    """Download and convert weights entry ``name`` into LEAFNET_WEIGHTS/NAME."""
    if name not in SOURCES:
        raise LeafnetError(f"unknown weights '{name}'; known: {', '.join(SOURCES)}")
    remote_files = remote_files or SOURCES[name][0]
    paths = [download(remote, weights_root() / "downloads", show_progress)
             for remote in remote_files]
    provenance = {"files": [{"url": r.url, "sha256": sha256_of(p)}
                            for r, p in zip(remote_files, paths, strict=True)]}
    return install(name, paths, trust_pickle, provenance, options)
