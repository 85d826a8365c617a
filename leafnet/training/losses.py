"""Losses shared by the training tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the soft Dice of each image's each channel ``(B, C, H, W)``, averaged; smoothed by 1
    so that an empty channel predicted empty costs nothing."""
    intersection = (probability * target).sum(dim=(-2, -1))
    total = probability.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return (1 - (2 * intersection + 1) / (total + 1)).mean()


def dice_bce_loss(probability: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soft Dice + BCE between mask-channel probabilities and the target masks, per image and
    channel, at full resolution: the pixel loss of single-step fine-tuning and the loss of the
    plain U-Net baseline."""
    probability = probability.clamp(1e-6, 1 - 1e-6)
    return soft_dice_loss(probability, mask) + F.binary_cross_entropy(probability, mask)
