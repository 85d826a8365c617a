"""The denoising backbone behind one small interface (conv_in to widen, encoder blocks for the
feature-alignment hook, forward), implemented by the LDM's UNet2DModel."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention
from torch import nn


class Backbone(nn.Module, ABC):
    """Maps ``concat(image latent, noisy mask latent)`` and a timestep to a latent prediction."""

    @property
    @abstractmethod
    def conv_in(self) -> nn.Conv2d:
        """The first convolution (widened from 4 to 8 input channels)."""

    @abstractmethod
    def replace_conv_in(self, conv: nn.Conv2d) -> None:
        """Install a new first convolution (and record its channels in the config)."""

    @abstractmethod
    def encoder_blocks(self) -> list[nn.Module]:
        """The encoder (down) blocks in order, for the feature-alignment hook."""

    @abstractmethod
    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The prediction for ``sample`` at ``timesteps``."""


def set_attention_heads(model: nn.Module, heads: int) -> None:
    """Give every self-attention layer ``heads`` heads.

    diffusers' UNet2DModel takes one head *dimension* for all levels, while the LDM U-Nets use a
    fixed *number* of heads (8) at every width; the weights do not depend on it.
    """
    for module in model.modules():
        if isinstance(module, Attention):
            module.heads = heads
            module.scale = (module.inner_dim // heads) ** -0.5


class UNet2DBackbone(Backbone):
    """diffusers' UNet2DModel (the unconditional LDM U-Net)."""

    def __init__(self, config: dict[str, Any], attention_heads: int) -> None:
        super().__init__()
        self.unet = UNet2DModel(**config)
        self.attention_heads = attention_heads
        set_attention_heads(self.unet, attention_heads)

    @property
    def conv_in(self) -> nn.Conv2d:
        return self.unet.conv_in

    def replace_conv_in(self, conv: nn.Conv2d) -> None:
        self.unet.conv_in = conv
        self.unet.register_to_config(in_channels=conv.in_channels)

    def encoder_blocks(self) -> list[nn.Module]:
        return list(self.unet.down_blocks)

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timesteps).sample


def widen_conv_in(conv: nn.Conv2d, factor: int = 2) -> nn.Conv2d:
    """A copy of ``conv`` taking ``factor`` times the input channels: the pretrained kernel is
    repeated for each input group and divided by ``factor``; the bias is kept.

    Fed the same tensor in every group, the widened layer gives exactly the original output
    (SDSeg zero-fills the new channels instead; the paper and Marigold duplicate and halve).
    """
    widened = nn.Conv2d(conv.in_channels * factor, conv.out_channels, conv.kernel_size,
                        conv.stride, conv.padding, conv.dilation, conv.groups,
                        conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        widened.weight.copy_(conv.weight.repeat(1, factor, 1, 1) / factor)
        if conv.bias is not None:
            widened.bias.copy_(conv.bias)
    return widened.to(conv.weight.device, conv.weight.dtype)
