"""Where leafnet keeps raw datasets, preprocessed data, results and pretrained weights.

Each folder is resolved when it is asked for (never at import time), so tests and users can
point the environment variables elsewhere at any moment:

- ``LEAFNET_RAW``, ``LEAFNET_PREPROCESSED``, ``LEAFNET_RESULTS`` override the data folders.
  Without them, the top-level ``leafnet_raw/``, ``leafnet_preprocessed/`` and
  ``leafnet_results/`` folders of the source checkout are used when leafnet runs from one,
  else those names under the current working directory.
- ``LEAFNET_WEIGHTS`` overrides the weights folder, by default ``~/.cache/leafnet``.
"""

from __future__ import annotations

import os
from pathlib import Path

from leafnet.errors import LeafnetError

_PACKAGE_DIR = Path(__file__).resolve().parent


def _default_base() -> Path:
    """The source checkout when leafnet runs from one (``pip install -e``), else the cwd."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "setup.cfg").is_file() and (checkout / "leafnet_raw").is_dir():
        return checkout
    return Path.cwd()


def _resolve(variable: str, folder_name: str) -> Path:
    value = os.environ.get(variable)
    if value:
        return Path(value).expanduser().resolve()
    return _default_base() / folder_name


def raw_root() -> Path:
    """Folder holding raw datasets (``DatasetXXX_Name``)."""
    return _resolve("LEAFNET_RAW", "leafnet_raw")


def preprocessed_root() -> Path:
    """Folder holding fingerprints, plans, splits and preprocessed arrays."""
    return _resolve("LEAFNET_PREPROCESSED", "leafnet_preprocessed")


def results_root() -> Path:
    """Folder holding trained models, logs and predictions."""
    return _resolve("LEAFNET_RESULTS", "leafnet_results")


def weights_root() -> Path:
    """Folder holding pretrained weights fetched or imported by ``leafnet_weights``."""
    value = os.environ.get("LEAFNET_WEIGHTS")
    if value:
        return Path(value).expanduser().resolve()
    return Path.home() / ".cache" / "leafnet"


def plain_name(value: object, what: str, source: Path | str) -> str:
    """``value`` if it is a single, ordinary file name; else an error naming ``source``.

    Names read from editable files (a plans file's ``data_identifier``, case ids in a splits
    file) become paths inside leafnet's folders: a separator, ``..``, ``.`` or a leading dot
    would make leafnet read, write or delete outside them, so each is checked where it is read.
    """
    text = value if isinstance(value, str) else ""
    if (not text or text in (".", "..") or text.startswith(".") or "/" in text or "\\" in text
            or "\0" in text or text != text.strip()):
        raise LeafnetError(
            f"{source}: {what} {value!r} is not a plain name (no '/', '\\', '..', leading '.' "
            "or surrounding spaces); leafnet only reads and writes inside its own folders. "
            "Fix the value in that file")
    return text


RUN_SEPARATOR = "__"


def run_folder_name(trainer: str, plans_name: str, preset: str) -> str:
    """``TRAINER__PLANS__PRESET``: the one place results-folder names are made."""
    parts = (trainer, plans_name, preset)
    for part in parts:
        plain_name(part, "run folder part", "the command line")
        if RUN_SEPARATOR in part:
            raise LeafnetError(f"'{part}' may not contain '{RUN_SEPARATOR}' (it separates "
                               "trainer, plans and preset in results folder names)")
    return RUN_SEPARATOR.join(parts)


def parse_run_folder_name(name: str) -> tuple[str, str, str] | None:
    """``(trainer, plans, preset)`` of a results folder name, or None if it is not one."""
    parts = name.split(RUN_SEPARATOR)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def trainer_output(dataset_name: str, trainer: str, plans_name: str, preset: str,
                   fold: int) -> Path:
    """``leafnet_results/DatasetXXX_Name/TRAINER__PLANS__PRESET/fold_N``."""
    return results_root() / dataset_name / run_folder_name(trainer, plans_name, preset) \
        / f"fold_{fold}"
