"""The shared-model archive: what it holds, and reading it without trusting it.

A zip written by ``leafnet_export_model`` mirrors the results layout, so installing is
unpacking into ``LEAFNET_RESULTS``::

    leafnet_model.json                      manifest: model, folds, every file's SHA-256 (and
                                            previous_runs: the stages before a crop stage,
                                            packed beside it, the first first)
    DatasetXXX_Name/TRAINER__PLANS__PRESET/fold_N/
        model_best/network_config.json      (and model_final/, when exported)
        model_best/network.safetensors
        model_best/network.onnx             (when leafnet_export_onnx made one)
        fast_decoder/config.json, *.safetensors   (when leafnet_distill_decoder made one)
        plans.json, dataset.json, split.json, fold_record.json,
        validation/summary.json, test/summary.json

Only JSON, safetensors and ONNX files are allowed: nothing in an archive is ever unpickled.
An archive is refused before anything is written when a name leaves its folder (absolute,
``..``, a drive or backslash), is a link, is not listed in the manifest, or does not match its
checksum; and before anything is inflated when the sizes its entries declare would inflate a
file more than ``MAX_RATIO`` times (weights barely compress; a zip bomb does) or the whole
beyond ``LEAFNET_MAX_MODEL_BYTES`` (default 64 GiB). zipfile never inflates past a declared
size, so the declared sizes bound the memory used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from leafnet.errors import LeafnetError
from leafnet.paths import parse_run_folder_name

MANIFEST = "leafnet_model.json"
ARCHIVE_FORMAT = 2
ALLOWED_ENDINGS = (".json", ".safetensors", ".onnx")
MAX_RATIO = 100
RATIO_CHECKED_ABOVE = 1 << 20
DEFAULT_MAX_MODEL_BYTES = 64 << 30


def _check_sizes(infos: list[zipfile.ZipInfo], archive: Path) -> None:
    """Refuse declared sizes that only a zip bomb has, before inflating anything."""
    for info in infos:
        if info.file_size > RATIO_CHECKED_ABOVE and \
                info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise LeafnetError(
                f"{archive}: refused, '{info.filename}' would inflate from "
                f"{info.compress_size} to {info.file_size} bytes (more than {MAX_RATIO} times; "
                "model weights barely compress): a zip bomb or a damaged archive")
    text = os.environ.get("LEAFNET_MAX_MODEL_BYTES", str(DEFAULT_MAX_MODEL_BYTES))
    if not text.isdigit():
        raise LeafnetError(f"LEAFNET_MAX_MODEL_BYTES={text!r} is not a number of bytes")
    limit = int(text)
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise LeafnetError(f"{archive}: refused, its files would take {total} bytes, more than "
                           f"{limit}; set LEAFNET_MAX_MODEL_BYTES=N to install a model this large "
                           "from a source you trust")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SharedModel:
    """An unpacked archive: ``root`` holds ``DatasetXXX_Name/RUN/fold_N`` folders."""

    root: Path
    manifest: dict[str, Any]

    @property
    def run_folder(self) -> Path:
        return self.root / self.manifest["dataset"] / self.manifest["run"]

    def fold_folders(self, folds: list[int] | tuple[int, ...] | None = None) -> list[Path]:
        """The folders of ``folds`` (all exported folds when None); an error lists the ones
        the archive has."""
        available = [int(fold) for fold in self.manifest["folds"]]
        chosen = available if folds is None else list(folds)
        missing = sorted(set(chosen) - set(available))
        if missing:
            raise LeafnetError(f"the model has no fold(s) {missing}; it holds folds {available}")
        return [self.run_folder / f"fold_{fold}" for fold in chosen]

    def previous_stage_folders(self, folds: list[int] | tuple[int, ...] | None = None
                               ) -> list[Path]:
        """The folders of ``folds`` of every stage packed before the model (a crop stage's
        coarse stage), the first first; empty for a one-stage model."""
        return [self.root / self.manifest["dataset"] / run / folder.name
                for run in previous_runs(self.manifest) for folder in self.fold_folders(folds)]


def previous_runs(manifest: dict[str, Any]) -> list[str]:
    """The run folders packed before the model's, the first first (format 1 named one, as
    ``coarse_run``)."""
    if "coarse_run" in manifest:
        return [manifest["coarse_run"]]
    return manifest.get("previous_runs", [])


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if (not name or name.startswith("/") or "\\" in name or ":" in name
            or any(part in ("", ".", "..") for part in name.rstrip("/").split("/"))):
        raise LeafnetError(f"{archive}: refused, the entry '{name}' points outside the "
                           "archive's folder; only install models from sources you trust")
    return path


def _check_manifest(manifest: Any, archive: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != "leafnet-model":
        raise LeafnetError(f"{archive}: {MANIFEST} is not a leafnet model manifest")
    version = manifest.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise LeafnetError(f"{archive}: the manifest's version {version!r} is not a number; the "
                           "archive was altered, export it again")
    if version > ARCHIVE_FORMAT:
        raise LeafnetError(f"{archive}: written by a newer leafnet (archive format "
                           f"{manifest.get('version')}); upgrade leafnet")
    dataset, run = str(manifest.get("dataset", "")), str(manifest.get("run", ""))
    if not dataset.startswith("Dataset") or parse_run_folder_name(run) is None:
        raise LeafnetError(f"{archive}: the manifest names no dataset / run folder")
    previous = previous_runs(manifest)
    if not isinstance(previous, list) or not all(
            isinstance(name, str) and parse_run_folder_name(name) is not None and name != run
            for name in previous):
        raise LeafnetError(f"{archive}: the manifest's previous runs {previous!r} are not run "
                           "folder names; the archive was altered, export it again")
    for part in (dataset, run, *previous):
        _safe_name(part, archive)
        if "/" in part:
            raise LeafnetError(f"{archive}: refused, '{part}' is not a plain folder name")
    files, folds = manifest.get("files"), manifest.get("folds")
    if not isinstance(files, dict) or not files or not isinstance(folds, list) or not folds:
        raise LeafnetError(f"{archive}: the manifest lists no files or folds")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()) or not all(
            isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in folds):
        raise LeafnetError(f"{archive}: the manifest's files (name: SHA-256) or folds (numbers) "
                           "are malformed; the archive was altered, export it again")
    return manifest


def read_archive(archive: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the checked contents (name -> bytes) of ``archive``; nothing is
    written. Every rule of the module docstring is enforced here."""
    if not archive.is_file():
        raise LeafnetError(f"{archive}: no such file")
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            _check_sizes(infos, archive)
            for info in infos:
                _safe_name(info.filename, archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise LeafnetError(f"{archive}: refused, '{info.filename}' is a link")
            names = {info.filename for info in infos if not info.is_dir()}
            if MANIFEST not in names:
                raise LeafnetError(f"{archive}: not a leafnet model ({MANIFEST} missing); "
                                   "make one with leafnet_export_model")
            manifest = _check_manifest(json.loads(bundle.read(MANIFEST)), archive)
            tops = tuple(f"{manifest['dataset']}/{run}/" for run in
                         (*previous_runs(manifest), manifest["run"]))
            contents = {}
            for name in sorted(names - {MANIFEST}):
                if not name.startswith(tops):
                    raise LeafnetError(f"{archive}: refused, '{name}' lies outside the model's "
                                       f"folder{'s' if len(tops) > 1 else ''} "
                                       f"{' and '.join(tops)}")
                if not name.endswith(ALLOWED_ENDINGS):
                    raise LeafnetError(f"{archive}: refused, '{name}' is not one of "
                                       f"{ALLOWED_ENDINGS} (shared models hold no pickles or "
                                       "code)")
                if name not in manifest["files"]:
                    raise LeafnetError(f"{archive}: refused, '{name}' is not in the manifest")
                data = bundle.read(name)
                if sha256(data) != manifest["files"][name]:
                    raise LeafnetError(f"{archive}: '{name}' does not match its checksum; the "
                                       "archive is damaged, download or export it again")
                contents[name] = data
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, KeyError) as error:
        raise LeafnetError(f"{archive}: not a readable leafnet model archive ({error})") from None
    missing = sorted(set(manifest["files"]) - set(contents))
    if missing:
        raise LeafnetError(f"{archive}: files of the manifest are missing, e.g. {missing[0]}")
    return manifest, contents


def extract_archive(archive: Path, target: Path) -> SharedModel:
    """Check ``archive`` completely, then write its files under ``target``."""
    manifest, contents = read_archive(archive)
    for name, data in contents.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return SharedModel(target, manifest)
