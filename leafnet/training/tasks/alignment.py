"""Feature alignment (Eq. 5): a U-Net encoder feature map, projected by an MLP, is pulled
towards a frozen teacher's patch tokens. Training only: teacher and projector are dropped at
inference, so nothing here is exported.

The teacher's tokens come from the feature cache (computed once per case and flip state) or,
with ``features="online"``, from the teacher run on every batch.
"""

from __future__ import annotations

from typing import Any

import torch

from leafnet.errors import LeafnetError
from leafnet.features.cache import FeatureCache, load_or_build_cache
from leafnet.models.distillation import EncoderFeatureHook, Projector, distillation_loss
from leafnet.models.network import LEAFNetwork
from leafnet.models.teachers import Teacher, load_teacher
from leafnet.training.tasks.task import RunContext

FEATURE_SOURCES = ("cache", "online")


def first_block_output(network: LEAFNetwork, target_size: tuple[int, int],
                       device: str) -> tuple[int, int]:
    """Grid side and channels of the first U-Net encoder block's output (16 for 256 px
    images): the teacher's token grid and the projector's input width."""
    latent = network.encode_image(torch.zeros(1, 3, *target_size, device=device))
    shapes = []
    handle = network.backbone.encoder_blocks()[0].register_forward_hook(
        lambda _m, _i, out: shapes.append((out[0] if isinstance(out, tuple) else out).shape))
    with torch.no_grad():
        network.denoise(latent, latent, torch.zeros(1, dtype=torch.long, device=device))
    handle.remove()
    channels, height, width = shapes[0][-3:]
    if height != width:
        raise LeafnetError(f"feature alignment needs a square grid, the U-Net's first block "
                           f"is {height}x{width}; use a square target size")
    return height, channels


class FeatureAlignment:
    """The teacher, its features for each batch, the hook on the U-Net and the projector."""

    def __init__(self, run: RunContext, teacher: str, weight: float, features: str) -> None:
        if features not in FEATURE_SOURCES:
            raise LeafnetError(f"teacher features '{features}' is not one of "
                               f"{', '.join(FEATURE_SOURCES)}")
        self.run, self.teacher, self.weight, self.features = run, teacher, weight, features
        self.cache: FeatureCache | None = None
        self.online_teacher: Teacher | None = None

    def build(self, network: LEAFNetwork) -> tuple[EncoderFeatureHook, Projector]:
        """The hook that captures the feature map and the projector (seeded apart from the
        network, so adding alignment does not change the network's initial weights)."""
        run = self.run
        grid, channels = first_block_output(network, run.plans.target_size, run.device)
        if self.features == "cache":
            self.cache = self._cache(grid)
            dim = int(next(iter(self.cache.views.values())).shape[-1])
        else:
            self.online_teacher = load_teacher(self.teacher, grid).to(run.device)
            dim = self.online_teacher.dim
        hook = EncoderFeatureHook(network.backbone, grid * grid)
        torch.manual_seed(run.seed + 1)
        self.projector = Projector(channels, dim, run.preset.projector_hidden).to(run.device)
        return hook, self.projector

    def _cache(self, grid: int) -> FeatureCache:
        """Rank 0 builds (or validates) the cache while the other ranks wait, then they load it."""
        run = self.run
        if not run.distributed.is_main:
            run.distributed.barrier()
        cache = load_or_build_cache(run.dataset_folder, self.teacher, grid, run.train_cases,
                                    lambda: load_teacher(self.teacher, grid), run.device,
                                    show_progress=run.show_progress and run.distributed.is_main)
        if run.distributed.is_main:
            run.distributed.barrier()
        return cache

    def loss(self, batch: dict[str, Any], image: torch.Tensor,
             projected: torch.Tensor) -> torch.Tensor:
        """Eq. 5 between the projected U-Net features and the teacher's tokens of the same
        view (the cache is looked up by case and flip state)."""
        if self.cache is not None:
            tokens = self.cache.tokens(self.run.local(batch["case_index"]),
                                       self.run.local(batch["flip"])).to(self.run.device)
        else:
            tokens = self.online_teacher(image)
        return distillation_loss(tokens, projected)

    def state(self) -> dict[str, Any]:
        return self.projector.state_dict()

    def load_state(self, state: dict[str, Any]) -> None:
        """The projector's weights from a checkpoint; one of another shape (a checkpoint from
        before the preset's ``projector_hidden`` changed) is refused by name."""
        mine = self.projector.state_dict()
        changed = [name for name, value in state.items()
                   if name in mine and tuple(value.shape) != tuple(mine[name].shape)]
        if changed or set(state) != set(mine):
            shapes = ", ".join(f"{name} {tuple(state[name].shape)} -> {tuple(mine[name].shape)}"
                               for name in changed[:2])
            raise LeafnetError(
                "the checkpoint's alignment MLP has another shape than this preset's "
                f"(projector_hidden {self.run.preset.projector_hidden}; {shapes or 'other layers'})"
                "; it was saved by an older leafnet or another preset: train again without --c")
        self.projector.load_state_dict(state)
