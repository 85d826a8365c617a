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


def rgb_layout(channels: int) -> list[int]:
    """Which mask channel each of the autoencoder's three RGB channels carries: one channel is
    replicated (a gray mask image), three fill R, G, B, and with two the spare B channel repeats
    the last one. For regions the last channel is the innermost (nnU-Net's
    ``regions_class_order`` paints it last), the one a first stage codes worst: repeated, it
    counts twice in the first stage's loss and its decoding averages two channels, which
    scored better than an unused channel at -1 (docs/results.md)."""
    if not 1 <= channels <= 3:
        raise ValueError(f"masks with {channels} channels cannot be coded (1 to 3)")
    return [min(index, channels - 1) for index in range(3)]


def unrecorded_rgb_layout(channels: int) -> list[int]:
    """The layout of first stages and networks saved before leafnet recorded one: the same as
    :func:`rgb_layout` except that two channels left B at -1 (written ``-1`` here). The one
    place that knows which saved models the layout change made unreadable."""
    return [0, 1, -1] if channels == 2 else rgb_layout(channels)


def mask_to_rgb(mask: torch.Tensor) -> torch.Tensor:
    """Target masks ``(B, C, H, W)`` in {0, 1} (the label scheme's coding, C = 1 to 3) -> the
    autoencoder's input space: three channels in [-1, 1], laid out by :func:`rgb_layout`."""
    coded = mask.float() * 2 - 1
    if coded.shape[1] == 1:
        return coded.expand(-1, 3, -1, -1)
    return coded[:, rgb_layout(coded.shape[1])]


def rgb_to_mask(decoded: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """The inverse of :func:`mask_to_rgb` for a decoded image: clamp to [-1, 1], map to [0, 1]
    and average the RGB channels that carry the same mask channel. Returns the probabilities
    ``(B, channels, H, W)``."""
    probability = (decoded.clamp(-1, 1) + 1) / 2
    if channels == 1:
        return probability.mean(dim=1, keepdim=True)
    layout = rgb_layout(channels)
    copies = [[rgb for rgb, carried in enumerate(layout) if carried == channel]
              for channel in range(channels)]
    return torch.stack([probability[:, rgb].mean(dim=1) for rgb in copies], dim=1)


def encode_mask(autoencoder: AutoencoderKL, mask: torch.Tensor,
                latent_scale: float) -> torch.Tensor:
    """Target masks ``(B, C, H, W)`` -> their scaled latent (posterior mode)."""
    return autoencoder.encode(mask_to_rgb(mask)).latent_dist.mode() * latent_scale


def decode_mask(autoencoder: AutoencoderKL, latent: torch.Tensor, latent_scale: float,
                channels: int = 1) -> torch.Tensor:
    """A scaled latent -> the mask channels' probabilities ``(B, channels, H, W)`` in [0, 1]."""
    return rgb_to_mask(autoencoder.decode(latent / latent_scale).sample, channels)
