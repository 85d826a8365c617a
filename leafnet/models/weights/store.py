"""The weights folder: one sub-folder per entry, in the format leafnet loads.

::

    LEAFNET_WEIGHTS/ldm-kl8-churches/vae/{config.json, diffusion_pytorch_model.safetensors}
                                   /unet/{config.json, diffusion_pytorch_model.safetensors}
    LEAFNET_WEIGHTS/dinov2-vitb14-reg/{teacher.json, teacher.safetensors}
    LEAFNET_WEIGHTS/clip-vit-b-16/{teacher.json, teacher.safetensors}

Every loader goes through :func:`require`, so a missing entry is one message naming the
``leafnet_weights`` command that provides it, never a traceback or a silent random init.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from leafnet.errors import LeafnetError
from leafnet.paths import weights_root

KNOWN = {
    "ldm-kl8-churches": "CompVis kl-f8 autoencoder + LSUN-churches LDM-KL-8 U-Net (paper preset)",
    "dinov2-vitb14-reg": "DINOv2 ViT-B/14 with registers (distillation teacher, default)",
    "clip-vit-b-16": "OpenAI CLIP ViT-B/16 image tower (distillation teacher)",
}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def entry_folder(name: str) -> Path:
    return weights_root() / name


def missing_message(name: str, path: Path) -> str:
    return (
        f"pretrained weights '{name}' are not installed ({path} is missing). Run "
        f"'leafnet_weights fetch {name}' (downloads and converts them), or on a machine without "
        f"internet 'leafnet_weights import {name} FILE...' with the files downloaded elsewhere "
        "('leafnet_weights list' shows what is installed and where)"
    )


def require(name: str, relative: str) -> Path:
    """The path of ``relative`` inside entry ``name``, or the error that says how to get it."""
    if name not in KNOWN:
        raise LeafnetError(f"unknown weights '{name}'; known: {', '.join(KNOWN)}")
    path = entry_folder(name) / relative
    if not path.exists():
        raise LeafnetError(missing_message(name, path))
    return path


def _diffusers_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / DIFFUSERS_WEIGHTS), device="cpu")


def load_autoencoder_weights(source: str) -> dict[str, torch.Tensor]:
    """AutoencoderKL weights from a weights entry name or a folder of a saved AutoencoderKL."""
    if source in KNOWN:
        return _diffusers_state(require(source, "vae"))
    folder = Path(source)
    if not (folder / DIFFUSERS_WEIGHTS).is_file():
        raise LeafnetError(
            f"no autoencoder weights at {folder} ({DIFFUSERS_WEIGHTS} missing); train the first "
            "stage with 'leafnet_train DATASET LEAFAutoencoderTrainer' or fetch pretrained weights"
        )
    return _diffusers_state(folder)


def load_unet_weights(name: str) -> dict[str, torch.Tensor]:
    """UNet2DModel weights (4 input channels, before widening) of a weights entry."""
    return _diffusers_state(require(name, "unet"))


def installed() -> dict[str, Path | None]:
    """Each known entry and its folder when it is installed (has its ``source.json``)."""
    return {name: entry_folder(name) if (entry_folder(name) / "source.json").is_file() else None
            for name in KNOWN}
