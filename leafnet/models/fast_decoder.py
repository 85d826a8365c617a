"""A small mask decoder distilled from the frozen autoencoder's decoder.

The frozen decoder is most of single-step inference time (docs/results.md) although a mask
needs far less capacity than an RGB image. This decoder maps the same scaled mask latent to the
mask channels' probabilities with a few plain convolutions at low resolution and a bilinear
upsampling of the logits for the last ``2 ** bilinear_stages`` (mask boundaries are smooth). It
is a diffusers ``ModelMixin``, saved and loaded like every other network (config JSON +
safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from leafnet.errors import LeafnetError
from leafnet.models.derived_files import check_source, model_flags
from leafnet.models.safetensors_io import NOT_SAFETENSORS, unreadable_weights
from leafnet.paths import plain_name
from leafnet.utilities.digests import weights_digest
from leafnet.utilities.json_files import read_json

FAST_DECODER_FOLDER = "fast_decoder"
REPORT_FILE = "distillation.json"


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                   nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.block(x))


class FastMaskDecoder(ModelMixin, ConfigMixin):
    """Scaled mask latent ``(B, latent_channels, h, w)`` -> probabilities
    ``(B, mask_channels, h * factor, w * factor)`` with ``factor = 2 ** (len(widths) - 1 +
    bilinear_stages)``: one residual block per width, a learnt 2x upsampling between widths."""

    @register_to_config
    def __init__(self, latent_channels: int = 4, mask_channels: int = 1,
                 widths: tuple[int, ...] = (64, 32, 16), bilinear_stages: int = 1) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(latent_channels, widths[0], 3, padding=1)
        stages: list[nn.Module] = []
        for index, width in enumerate(widths):
            stages.append(_Residual(width))
            if index + 1 < len(widths):
                stages += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(width, widths[index + 1], 3, padding=1), nn.SiLU()]
        self.stages = nn.Sequential(*stages)
        self.conv_out = nn.Conv2d(widths[-1], mask_channels, 3, padding=1)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.config.widths) - 1 + self.config.bilinear_stages)

    def logits(self, latent: torch.Tensor) -> torch.Tensor:
        logits = self.conv_out(self.stages(F.silu(self.conv_in(latent))))
        if self.config.bilinear_stages:
            logits = F.interpolate(logits, scale_factor=2 ** self.config.bilinear_stages,
                                   mode="bilinear", align_corners=False)
        return logits

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(latent))


def fast_decoder_for(latent_channels: int, mask_channels: int,
                     downsampling: int) -> FastMaskDecoder:
    """The fast decoder for an autoencoder that downsamples by ``downsampling`` (8 for every
    preset): three learnt stages, the rest bilinear."""
    learnt = 3
    bilinear = downsampling.bit_length() - 1 - (learnt - 1)
    if bilinear < 0 or 2 ** (downsampling.bit_length() - 1) != downsampling:
        raise LeafnetError(f"no fast decoder for a downsampling factor of {downsampling}")
    return FastMaskDecoder(latent_channels, mask_channels, (64, 32, 16), bilinear)


def check_fast_decoder(fold_folder: Path, model: Path) -> Path:
    """The fold's fast decoder folder, refused (naming ``leafnet_distill_decoder``) when there
    is none or when it was distilled from other weights than ``model``, the exported model it
    is to decode for, holds now (another checkpoint of the fold, or a retrained model)."""
    folder = fold_folder / FAST_DECODER_FOLDER
    checkpoint = model.name.removeprefix("model_")
    remake = f"leafnet_distill_decoder {model_flags(fold_folder)} -chk {checkpoint}"
    if not (folder / "config.json").is_file():
        raise LeafnetError(f"{fold_folder} has no fast decoder ({FAST_DECODER_FOLDER}/); distil "
                           f"one with {remake}, or predict without --fast-decoder")
    report = read_json(folder / REPORT_FILE) or {}
    source = plain_name(str(report.get("model", "model_best")), "model folder",
                        folder / REPORT_FILE)
    recorded, current = report.get("model_digest"), weights_digest(model)
    if source != model.name and recorded != current:
        raise LeafnetError(
            f"{folder} was distilled from {source}, but the model it would decode for is "
            f"{model.name} (other weights); distil one for {model.name}: {remake}, or predict "
            f"with -chk {source.removeprefix('model_')}")
    check_source(folder, recorded, current, model, remake)
    return folder


def load_fast_decoder(fold_folder: Path, model: Path,
                      device: str | torch.device = "cpu") -> FastMaskDecoder:
    """The fast decoder distilled for a fold's exported ``model`` (``leafnet_distill_decoder``),
    checked by :func:`check_fast_decoder`."""
    folder = check_fast_decoder(fold_folder, model)
    try:
        decoder = FastMaskDecoder.from_pretrained(str(folder), low_cpu_mem_usage=False)
    except NOT_SAFETENSORS as error:
        raise unreadable_weights(folder, error) from None
    return decoder.to(device).eval()
