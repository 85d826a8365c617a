"""The feature-alignment teachers, one entry each: adding a teacher is adding a TeacherSpec.

An entry says everything leafnet needs: the weights entry name and the short alias trainers use,
the architecture stored in ``teacher.json`` (its ``library`` picks the builder in teachers.py),
the input normalisation, how the original file is converted (``source_format``, a converter in
weights/sources.py) and where that file is published. The token width comes from the built
model. This module is data only, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leafnet.errors import LeafnetError
from leafnet.models.weights.remote import RemoteFile

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TeacherSpec:
    entry: str
    alias: str
    description: str
    architecture: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source_format: str
    remote_files: tuple[RemoteFile, ...]


TEACHER_SPECS: dict[str, TeacherSpec] = {spec.entry: spec for spec in (
    TeacherSpec(
        entry="dinov2-vitb14-reg", alias="dinov2",
        description="DINOv2 ViT-B/14 with registers (distillation teacher, default)",
        architecture={"library": "timm", "architecture": "vit_base_patch14_reg4_dinov2",
                      "kwargs": {"patch_size": 14}, "native_grid": 37},
        mean=IMAGENET_MEAN, std=IMAGENET_STD, source_format="timm_state_dict",
        remote_files=(RemoteFile("https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/"
                                 "dinov2_vitb14_reg4_pretrain.pth",
                                 "dinov2_vitb14_reg4_pretrain.pth"),)),
    TeacherSpec(
        entry="clip-vit-b-16", alias="clip",
        description="OpenAI CLIP ViT-B/16 image tower (distillation teacher)",
        architecture={"library": "open_clip", "embed_dim": 512, "quick_gelu": True,
                      "native_grid": 14, "vision_cfg": {"image_size": 224, "layers": 12,
                                                        "width": 768, "patch_size": 16}},
        mean=CLIP_MEAN, std=CLIP_STD, source_format="openai_clip",
        remote_files=(RemoteFile("https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b5"
                                 "9890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
                                 "ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e8"
                                 "5e4ecb61988df416f"),)),
)}
DEFAULT_TEACHER = "dinov2-vitb14-reg"


def teacher_spec(name: str) -> TeacherSpec:
    """The entry of teacher ``name``: its weights entry name or its alias."""
    for spec in TEACHER_SPECS.values():
        if name in (spec.entry, spec.alias):
            return spec
    known = ", ".join(f"{s.alias} ({s.entry})" for s in TEACHER_SPECS.values())
    raise LeafnetError(f"unknown teacher '{name}'; known: {known}")
