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

import json
from pathlib import Path

import torch
from diffusers import UNet2DModel

from leafnet.errors import LeafnetError
from leafnet.models.backbone import set_attention_heads
from leafnet.models.safetensors_io import NOT_SAFETENSORS, read_safetensors, unreadable_weights
from leafnet.models.teacher_specs import TEACHER_SPECS
from leafnet.paths import weights_root

KNOWN = {
    "ldm-kl8-churches": "CompVis kl-f8 autoencoder + LSUN-churches LDM-KL-8 U-Net (paper preset)",
    **{entry: spec.description for entry, spec in TEACHER_SPECS.items()},
}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
ATTENTION_HEADS_FILE = "leafnet_attention_heads.json"
SOURCE_FILE = "source.json"


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
    return read_safetensors(folder / DIFFUSERS_WEIGHTS)


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
    return {name: entry_folder(name) if (entry_folder(name) / SOURCE_FILE).is_file() else None
            for name in KNOWN}


def installed_scale_factor(name: str | None) -> float | None:
    """The latent scale recorded when entry ``name`` was imported (the LDM checkpoint's own
    ``scale_factor``, or kl-f8's default); None when it is not installed or records none."""
    if name not in KNOWN or installed()[name] is None:
        return None
    value = json.loads((entry_folder(name) / SOURCE_FILE).read_text()).get("scale_factor")
    return float(value) if value is not None else None


def load_ldm_unet(folder: Path) -> UNet2DModel:
    """An installed ``unet/`` folder as a diffusers UNet2DModel with its 8 attention heads.

    ``UNet2DModel.from_pretrained(folder)`` alone gives every attention layer one head per
    ``attention_head_dim`` channels, since diffusers' config has no fixed head count; the LDM
    U-Nets use 8 heads at every width. The weights are the same either way; the heads are
    set from ``leafnet_attention_heads.json`` beside the config."""
    try:
        unet = UNet2DModel.from_pretrained(folder)
    except NOT_SAFETENSORS as error:
        raise unreadable_weights(Path(folder), error) from None
    heads = json.loads((folder / ATTENTION_HEADS_FILE).read_text())["attention_heads"]
    set_attention_heads(unet, heads)
    return unet
