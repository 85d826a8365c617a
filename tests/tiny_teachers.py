"""Tiny random teachers saved in their publishers' formats and installed through the real
import code (tests cannot download DINOv2 or CLIP)."""

from __future__ import annotations

import torch

from leafnet.models.teachers import build_teacher_model
from leafnet.models.weights.sources import install

TINY_DINOV2 = {"library": "timm", "architecture": "vit_base_patch14_reg4_dinov2",
               "kwargs": {"patch_size": 14, "embed_dim": 24, "depth": 1, "num_heads": 2},
               "native_grid": 4}
TINY_CLIP = {"library": "open_clip", "embed_dim": 16, "quick_gelu": True, "native_grid": 2,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                            "head_width": 16}}


def install_tiny_teachers(tmp_path) -> None:
    """Save random tiny teachers in the publishers' formats and import them."""
    torch.manual_seed(0)
    dinov2, _ = build_teacher_model(TINY_DINOV2, TINY_DINOV2["native_grid"])
    torch.save(dinov2.state_dict(), tmp_path / "dinov2.pth")
    install("dinov2-vitb14-reg", [tmp_path / "dinov2.pth"],
            options={"architecture": TINY_DINOV2})
    clip, _ = build_teacher_model(TINY_CLIP, TINY_CLIP["native_grid"])
    torch.save({f"visual.{k}": v for k, v in clip.state_dict().items()}, tmp_path / "clip.pt")
    install("clip-vit-b-16", [tmp_path / "clip.pt"], options={"architecture": TINY_CLIP})
