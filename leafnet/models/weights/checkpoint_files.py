"""Reading weight files as they are distributed: zip archives, PyTorch pickles, safetensors."""

from __future__ import annotations

import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from leafnet.errors import LeafnetError
from leafnet.models.safetensors_io import read_safetensors
from leafnet.models.weights.restricted_pickle import load_restricted


def _torch_load(path: Path, trust_pickle: bool, shown_name: str) -> object:
    """The restricted reader by default; the full unpickler only with ``--trust-pickle``."""
    if not trust_pickle:
        return load_restricted(path, shown_name)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # --trust-pickle
    except ModuleNotFoundError as error:
        raise LeafnetError(
            f"{shown_name}: with --trust-pickle the file's classes are imported, and module "
            f"'{error.name}' is not installed; install it, or drop --trust-pickle (leafnet's "
            "restricted reader needs no such module)") from error
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise LeafnetError(f"{shown_name}: is not a readable PyTorch checkpoint ({error})") \
            from error


def read_state_dict(path: Path, trust_pickle: bool = False,
                    member_suffix: str = "model.ckpt") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a Lightning ``state_dict`` is unwrapped).

    A ``.zip`` is searched for a member ending in ``member_suffix`` (CompVis' archives hold
    ``model.ckpt``); ``.safetensors`` is read without pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise LeafnetError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if zipfile.is_zipfile(path) and path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(member_suffix)]
            if not members:
                raise LeafnetError(f"{path}: the archive holds no {member_suffix}")
            with tempfile.TemporaryDirectory() as scratch:
                extracted = Path(archive.extract(members[0], scratch))
                loaded = _torch_load(extracted, trust_pickle, f"{path}:{members[0]}")
    else:
        loaded = _torch_load(path, trust_pickle, str(path))
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise LeafnetError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    return {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
