"""Reading ``.safetensors`` files with one clear error for a file that is not one (a pickle
renamed, a truncated download, an HTML error page saved under the name)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from leafnet.errors import LeafnetError

NOT_SAFETENSORS = (SafetensorError, OSError, ValueError)


def unreadable_weights(path: Path, error: BaseException) -> LeafnetError:
    """The error for weights at ``path`` that cannot be read."""
    return LeafnetError(f"{path}: is not a readable safetensors file ({error}); it is damaged, "
                        "or another format was saved under this name. Replace it: export, "
                        "train or download it again")


def read_safetensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``path``; a missing or unreadable file is a :class:`LeafnetError`."""
    if not path.is_file():
        raise LeafnetError(f"{path}: no such file")
    try:
        return load_file(str(path), device=str(device))
    except NOT_SAFETENSORS as error:
        raise unreadable_weights(path, error) from None
