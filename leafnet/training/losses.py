"""Losses shared by the training tasks."""

from __future__ import annotations

import torch


def soft_dice_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the soft Dice of each image's each channel ``(B, C, H, W)``, averaged; smoothed by 1
    so that an empty channel predicted empty costs nothing."""
    intersection = (probability * target).sum(dim=(-2, -1))
    total = probability.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return (1 - (2 * intersection + 1) / (total + 1)).mean()
