"""Frozen vision teachers that return patch tokens: DINOv2 ViT-B/14 with registers (timm) and
CLIP ViT-B/16 (open_clip).

The input size is chosen so that the token grid equals a U-Net encoder block's grid (16 x 16 for
256 px images: 224 px for patch 14, 256 px for patch 16); position embeddings are interpolated to
that grid when the weights are loaded. Images arrive in [-1, 1] and are resized and normalised
here (ImageNet statistics for DINOv2, CLIP's own for CLIP).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from leafnet.atomic import atomic_path, write_json
from leafnet.errors import LeafnetError
from leafnet.models.safetensors_io import read_safetensors
from leafnet.models.teacher_specs import teacher_spec
from leafnet.models.weights.store import require

TEACHER_CONFIG = "teacher.json"
TEACHER_WEIGHTS = "teacher.safetensors"


class Teacher(nn.Module):
    """A frozen ViT returning ``(B, grid*grid, D)`` patch tokens of an image in [-1, 1]."""

    def __init__(self, name: str, model: nn.Module, kind: str, patch_size: int, grid: int,
                 dim: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.name, self.kind = name, kind
        self.model = model.eval().requires_grad_(False)
        self.patch_size, self.grid, self.dim = patch_size, grid, dim
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def input_size(self) -> int:
        return self.grid * self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        image = F.interpolate((image.float() + 1) / 2, size=(self.input_size, self.input_size),
                              mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        image = (image - self.mean) / self.std
        if self.kind == "timm":
            tokens = self.model.forward_features(image)[:, self.model.num_prefix_tokens:]
        else:
            tokens = self.model(image)[1]
        return tokens


def _build_timm(config: dict[str, Any], grid: int) -> tuple[nn.Module, int]:
    import timm

    kwargs = dict(config["kwargs"])
    patch = kwargs.get("patch_size", 14)
    kwargs["img_size"] = grid * patch
    return timm.create_model(config["architecture"], pretrained=False, **kwargs), patch


def _build_open_clip(config: dict[str, Any], grid: int) -> tuple[nn.Module, int]:
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    vision = dict(config["vision_cfg"])
    vision["image_size"] = grid * vision["patch_size"]
    tower = _build_vision_tower(config["embed_dim"], CLIPVisionCfg(**vision),
                                quick_gelu=config.get("quick_gelu", False))
    tower.output_tokens = True
    return tower, vision["patch_size"]


def _adapt_state(kind: str, state: dict[str, torch.Tensor], model: nn.Module) -> dict:
    """Interpolate position embeddings of the stored weights to ``model``'s grid."""
    if kind == "timm":
        from timm.models.vision_transformer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)
    from open_clip.model import resize_pos_embed

    prefixed = {f"visual.{k}": v for k, v in state.items()}
    holder = nn.Module()
    holder.visual = model
    resize_pos_embed(prefixed, holder)
    return {k.removeprefix("visual."): v for k, v in prefixed.items()}


def save_teacher(folder: Path, config: dict[str, Any], model: nn.Module) -> None:
    """Store a teacher as leafnet loads it: ``teacher.json`` + ``teacher.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / TEACHER_WEIGHTS) as temporary:
        save_file(state, str(temporary))
    write_json(folder / TEACHER_CONFIG, config)


def build_teacher_model(config: dict[str, Any], grid: int) -> tuple[nn.Module, int]:
    """The architecture of a stored teacher, sized for a ``grid`` x ``grid`` token grid."""
    builder = _build_timm if config["library"] == "timm" else _build_open_clip
    return builder(config, grid)


def load_teacher(name: str, grid: int) -> Teacher:
    """Load teacher ``name`` (a weights entry or its alias, see teacher_specs.py) for a grid."""
    spec = teacher_spec(name)
    name = spec.entry
    folder = require(name, TEACHER_CONFIG).parent
    require(name, TEACHER_WEIGHTS)
    config = json.loads((folder / TEACHER_CONFIG).read_text())
    model, patch = build_teacher_model(config, grid)
    kind = config["library"]
    state = _adapt_state(kind, read_safetensors(folder / TEACHER_WEIGHTS), model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LeafnetError(f"teacher '{name}' weights do not fit its architecture "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    dim = model.embed_dim if kind == "timm" else model.transformer.width
    return Teacher(name, model, kind, patch, grid, dim, spec.mean, spec.std)
