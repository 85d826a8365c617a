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


def encode_mask(autoencoder: AutoencoderKL, mask: torch.Tensor,
                latent_scale: float) -> torch.Tensor:
    """A binary mask ``(B, 1, H, W)`` in {0, 1} -> its scaled latent (posterior mode).

    The mask is mapped to [-1, 1] and replicated to the three channels the autoencoder takes.
    """
    image = (mask.float() * 2 - 1).expand(-1, 3, -1, -1)
    return autoencoder.encode(image).latent_dist.mode() * latent_scale


def decode_mask(autoencoder: AutoencoderKL, latent: torch.Tensor,
                latent_scale: float) -> torch.Tensor:
    """A scaled latent -> the foreground probability map ``(B, 1, H, W)`` in [0, 1]:
    decode, clamp to [-1, 1], map to [0, 1], average the three channels."""
    decoded = autoencoder.decode(latent / latent_scale).sample.clamp(-1, 1)
    return ((decoded + 1) / 2).mean(dim=1, keepdim=True)
