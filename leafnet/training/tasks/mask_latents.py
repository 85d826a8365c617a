"""The frozen autoencoder's mask latents, computed once per case and view.

With flips as the only augmentation a training mask is one of four views of its case (no flip,
vertical, horizontal, both), and the frozen encoder maps each view to the same latent on every
step, so it is encoded the first time it is drawn and looked up afterwards. Each view is encoded
on its own, never as part of a batch, so its latent does not depend on which cases shared its
first batch: a resumed run (empty cache) gets bit for bit the latents of a straight one.
Spatially augmented masks are new every step and are encoded as they come.
"""

from __future__ import annotations

import numpy as np
import torch

from leafnet.models.network import LEAFNetwork

MAX_CACHE_BYTES = 2 * 2**30


class MaskLatentCache:
    """Latents ``(4, h, w)`` by (case index, vertical flip, horizontal flip), kept on the CPU up
    to ``max_bytes``; views beyond that are encoded each time they are drawn."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.latents: dict[tuple[int, bool, bool], torch.Tensor] = {}
        self.bytes = 0
        self.encoded = 0

    def __call__(self, network: LEAFNetwork, masks: torch.Tensor, case_index: np.ndarray,
                 flips: np.ndarray) -> torch.Tensor:
        """The latents of ``masks`` ``(B, C, H, W)``, whose views ``case_index`` and ``flips``
        ``(B, 2)`` name."""
        found = []
        for mask, index, flip in zip(masks, case_index, flips, strict=True):
            key = (int(index), bool(flip[0]), bool(flip[1]))
            latent = self.latents.get(key)
            if latent is None:
                latent = network.encode_mask(mask[None]).float()[0].cpu()
                self.encoded += 1
                size = latent.numel() * latent.element_size()
                if self.bytes + size <= self.max_bytes:
                    self.latents[key] = latent
                    self.bytes += size
            found.append(latent)
        return torch.stack(found).to(masks.device)
