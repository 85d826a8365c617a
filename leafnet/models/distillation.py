"""Feature alignment (training only): the encoder-block hook, the projector MLP and Eq. 5's loss.

None of this is part of the exported network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from leafnet.errors import LeafnetError
from leafnet.models.backbone import Backbone


class Projector(nn.Module):
    """Per-token MLP phi: Linear(C, h) - SiLU - Linear(h, h) - SiLU - Linear(h, D), h = 2048 in
    the paper (the preset's ``projector_hidden``)."""

    def __init__(self, in_channels: int, out_dim: int, hidden: int = 2048) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, H*W, D)``, tokens in row-major order like a ViT's."""
        return self.mlp(feature_map.flatten(2).transpose(1, 2))


class EncoderFeatureHook:
    """Captures the output of the first encoder block whose H*W equals ``num_tokens``.

    The block is found on the first forward pass; use it as a context manager around the
    backbone call, then read :attr:`feature`.
    """

    def __init__(self, backbone: Backbone, num_tokens: int) -> None:
        self.backbone = backbone
        self.num_tokens = num_tokens
        self.block_index: int | None = None
        self.feature: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, index: int):
        def capture(_module: nn.Module, _inputs: object, output: object) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            if self.block_index is None and hidden.shape[-2] * hidden.shape[-1] == self.num_tokens:
                self.block_index = index
            if index == self.block_index:
                self.feature = hidden
        return capture

    def __enter__(self) -> EncoderFeatureHook:
        self.feature = None
        blocks = self.backbone.encoder_blocks()
        indices = range(len(blocks)) if self.block_index is None else [self.block_index]
        self._handles = [blocks[i].register_forward_hook(self._hook(i)) for i in indices]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if exc_info[0] is None and self.feature is None:
            raise LeafnetError(
                f"no U-Net encoder block has {self.num_tokens} positions (a "
                f"{int(self.num_tokens ** 0.5)}^2 grid); choose a teacher grid that matches one "
                "of the encoder's resolutions"
            )

    def channels(self) -> int:
        """Channels of the captured block (known after the first forward)."""
        if self.feature is None:
            raise LeafnetError("run a forward pass before asking for the hooked channels")
        return self.feature.shape[1]


def distillation_loss(teacher_tokens: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
    """Eq. 5: minus the cosine similarity of teacher and projected tokens, averaged over the
    tokens and the batch (LEAF's code divides by the batch size twice; this does not)."""
    if teacher_tokens.shape != projected.shape:
        raise ValueError(f"token shapes differ: teacher {tuple(teacher_tokens.shape)}, "
                         f"projection {tuple(projected.shape)}")
    return -F.cosine_similarity(teacher_tokens.float(), projected.float(), dim=-1).mean()
