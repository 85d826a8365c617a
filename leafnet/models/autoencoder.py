"""The frozen mask autoencoder, the trainable image encoder, and mask encoding/decoding."""

from __future__ import annotations

import copy

import torch
from diffusers import AutoencoderKL
from torch import nn


class ImageEncoder(nn.Module):
    """A trainable copy of the autoencoder's encoder and quant_conv; returns the posterior mode
    (the mean, not a sample) times the latent scale."""

    def __init__(self, autoencoder: AutoencoderKL, latent_scale: float) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(autoencoder.encoder)
        self.quant_conv = copy.deepcopy(autoencoder.quant_conv)
        self.latent_scale = latent_scale
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        moments = self.encoder(image)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, _ = torch.chunk(moments, 2, dim=1)
        return mean * self.latent_scale


def mask_to_rgb(mask: torch.Tensor) -> torch.Tensor:
    """Target masks ``(B, 1, H, W)`` in {0, 1} (the label scheme's coding) -> the autoencoder's
    input space: three channels in [-1, 1], the one mask channel replicated."""
    if mask.shape[1] != 1:
        raise ValueError(f"masks with {mask.shape[1]} channels cannot be coded yet (one)")
    return (mask.float() * 2 - 1).expand(-1, 3, -1, -1)


def rgb_to_mask(decoded: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`mask_to_rgb` for a decoded image: clamp to [-1, 1], map to
    [0, 1] and average the three channels into the foreground probability ``(B, 1, H, W)``."""
    return ((decoded.clamp(-1, 1) + 1) / 2).mean(dim=1, keepdim=True)


def encode_mask(autoencoder: AutoencoderKL, mask: torch.Tensor,
                latent_scale: float) -> torch.Tensor:
    """Target masks ``(B, 1, H, W)`` -> their scaled latent (posterior mode)."""
    return autoencoder.encode(mask_to_rgb(mask)).latent_dist.mode() * latent_scale


def decode_mask(autoencoder: AutoencoderKL, latent: torch.Tensor,
                latent_scale: float) -> torch.Tensor:
    """A scaled latent -> the foreground probability map ``(B, 1, H, W)`` in [0, 1]."""
    return rgb_to_mask(autoencoder.decode(latent / latent_scale).sample)
