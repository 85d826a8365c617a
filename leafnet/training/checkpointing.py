"""Training checkpoints and the inference models exported beside them.

A checkpoint holds tensors and plain Python types only (RNG states are stored as tensors), so it
is read with ``torch.load(..., weights_only=True)``: opening one never runs code. Prediction does
not read checkpoints at all: at best and final the trainer exports the EMA network as
``model_best/`` and ``model_final/`` (``network_config.json`` + ``network.safetensors``).
"""

from __future__ import annotations

import errno
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leafnet.atomic import atomic_path, copy_file
from leafnet.errors import LeafnetError
from leafnet.models.network import LEAFNetwork, model_folder, save_network

LATEST = "checkpoint_latest.pth"  # every validation interval: what --c continues from
BEST = "checkpoint_best.pth"  # the interval with the best validation Dice so far
FINAL = "checkpoint_final.pth"  # the end of the run


def _failed_write(error: Exception) -> bool:
    """A full disk or failed write (torch reports those as RuntimeError, Python as OSError)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)
    return "write failed" in str(error) or "No space" in str(error)


@contextmanager
def _written(path: Path) -> Iterator[None]:
    """A full disk or failed write while writing ``path`` becomes a readable error."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if not _failed_write(error):
            raise
        raise LeafnetError(f"{path}: could not be written ({error}); free disk space and "
                           "continue with --c") from error


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; a full disk is a readable error and leaves no partial file."""
    with _written(path), atomic_path(path) as temporary:
        torch.save(state, temporary)


def save_interval_checkpoints(folder: Path, state: dict[str, Any], best: bool) -> None:
    """``LATEST`` from ``state``, and ``BEST`` when this interval is the best so far: the same
    state, so its bytes are copied (pickling ~1000 tensors again cost more than the copy)."""
    save_checkpoint(folder / LATEST, state)
    if best:
        with _written(folder / BEST):
            copy_file(folder / LATEST, folder / BEST)


def save_final_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """``FINAL`` from ``state``, and ``LATEST`` too when no interval wrote one (the goal was met
    before the first step), so that ``--c`` finds the finished run; the final path."""
    save_checkpoint(folder / FINAL, state)
    if not (folder / LATEST).is_file():
        save_checkpoint(folder / LATEST, state)
    return folder / FINAL


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint leafnet wrote, read without unpickling code (``weights_only=True``)."""
    if not path.is_file():
        raise LeafnetError(f"{path} does not exist; train first (leafnet_train ...)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise LeafnetError(
            f"{path}: holds Python objects besides tensors and plain types (written by an older "
            f"leafnet or another program), which leafnet does not unpickle ({error}). Train "
            "again, or move the file away") from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise LeafnetError(
            f"{path}: is truncated or not a PyTorch checkpoint ({error}). Delete it and continue "
            "from another checkpoint of the run (--c uses checkpoint_latest.pth), or train "
            "again") from error
    if not isinstance(state, dict) or "trainer" not in state:
        raise LeafnetError(f"{path}: is not a leafnet training checkpoint")
    return state


def remove_checkpoints(folder: Path, continuing: bool) -> str:
    """Remove the checkpoints of an earlier run of ``folder``: a run that starts over must never
    be continued (``--c``) from them. Return what was removed, in words for the log (empty
    when there was nothing): starting over is never silent. ``continuing``: --c was given but
    found no checkpoint_latest.pth to continue from."""
    removed = []
    for name in (LATEST, BEST, FINAL):
        if (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    if not removed:
        return ""
    why = ("--c found no checkpoint_latest.pth to continue from" if continuing else
           "without --c (leafnet_train ... --c continues a run instead)")
    return f"started over, {why}: the earlier run's {', '.join(removed)} in {folder} were removed"


def rng_state() -> dict[str, Any]:
    """torch's and numpy's global RNG states as tensors and numbers (no numpy objects)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_kind": str(kind),
            "numpy_keys": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(position),
            "numpy_has_gauss": int(has_gauss), "numpy_cached_gaussian": float(cached)}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state((state["numpy_kind"], state["numpy_keys"].numpy().astype(np.uint32),
                         state["numpy_pos"], state["numpy_has_gauss"],
                         state["numpy_cached_gaussian"]))


def trainable_parameters(network: LEAFNetwork) -> list[torch.nn.Parameter]:
    """The parameters training updates (and the EMA follows), in a fixed order."""
    return list(network.image_encoder.parameters()) + list(network.backbone.parameters())


def export_model(network: LEAFNetwork, fold_folder: Path, checkpoint: str) -> Path:
    """Save ``network`` (the caller has swapped in the EMA weights) as the inference model."""
    folder = model_folder(fold_folder, checkpoint)
    save_network(network, folder)
    return folder
