"""The single-step predictor as one module: image and noise in, mask-channel probabilities out.

One graph for every backend: PyTorch prediction runs it, the ONNX export traces it, and the
fast mask decoder replaces the frozen decoder inside it. Pre- and post-processing (intensity
window, resizing, label decoding) stay outside, in the predictor, so every backend shares them.
"""

from __future__ import annotations

import torch
from torch import nn

from leafnet.models.fast_decoder import FastMaskDecoder
from leafnet.models.network import LEAFNetwork


class SingleStep(nn.Module):
    """``forward(image, noise)``: image ``(B, C, H, W)`` in [-1, 1] at the planned size and the
    noise ``(B, *latent)`` -> probabilities ``(B, mask_channels, H, W)``."""

    def __init__(self, network: LEAFNetwork, fast_decoder: FastMaskDecoder | None = None) -> None:
        super().__init__()
        self.network = network
        self.fast_decoder = fast_decoder

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.network.latent_shape(image_shape)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        z0 = self.network.estimate_mask_latent(image, noise)
        if self.fast_decoder is not None:
            return self.fast_decoder(z0.float())
        return self.network.decode_mask(z0).float()
