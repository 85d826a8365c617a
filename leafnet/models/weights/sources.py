"""Where each weights entry comes from, and how its original files become leafnet's format.

``fetch`` downloads the original files (progress bar, SHA-256 check where the publisher states
one, atomic) and ``import`` takes the same files from disk; both end in the same conversion,
written to a temporary folder and renamed into LEAFNET_WEIGHTS/NAME.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DModel

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.models.backbone import set_attention_heads
from leafnet.models.presets import KL_F8_SCALE, get_preset
from leafnet.models.teacher_specs import TEACHER_SPECS, TeacherSpec
from leafnet.models.teachers import build_teacher_model, save_teacher
from leafnet.models.weights.checkpoint_files import read_state_dict
from leafnet.models.weights.compvis import (
    UNET_PREFIX,
    VAE_PREFIX,
    check_complete,
    convert_ldm_unet,
    convert_ldm_vae,
    ema_unet_state,
    strip_prefix,
)
from leafnet.models.weights.remote import RemoteFile
from leafnet.models.weights.store import ATTENTION_HEADS_FILE, KNOWN, entry_folder


Converter = Callable[[list[Path], Path, bool, dict[str, Any]], dict[str, Any]]
"""(original files, output folder, trust_pickle, options) -> what was taken, for source.json."""


def _ldm_scale_factor(unet_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The latent scale the LDM checkpoint stores (a ``scale_factor`` buffer when it was trained
    with ``scale_by_std``), else kl-f8's 0.18215, with where it came from."""
    if "scale_factor" in unet_state:
        value = float(unet_state["scale_factor"])
        if abs(value - KL_F8_SCALE) > 1e-6:
            warnings.warn(f"the LDM checkpoint's scale_factor is {value:.6g}, not kl-f8's "
                          f"{KL_F8_SCALE}; leafnet uses the checkpoint's value", stacklevel=2)
        return {"scale_factor": value, "scale_factor_from": "checkpoint"}
    return {"scale_factor": KL_F8_SCALE,
            "scale_factor_from": f"default (the checkpoint stores none; kl-f8's {KL_F8_SCALE})"}


def _convert_ldm(files: list[Path], output: Path, trust_pickle: bool,
                 options: dict[str, Any]) -> dict[str, Any]:
    """kl-f8 (autoencoder) + lsun_churches (U-Net, and its own first stage) -> vae/ + unet/.

    ``options``: ``unet_weights`` "raw" (default, as LEAF) or "ema" (the checkpoint's
    ``model_ema.*``); ``preset`` another preset whose shapes the files have (tests use tiny ones).
    """
    preset = get_preset(options.get("preset", "paper"))
    use_ema = options.get("unet_weights", "raw") == "ema"
    states = [read_state_dict(path, trust_pickle) for path in files]
    unet_states = [s for s in states if any(k.startswith(UNET_PREFIX) for k in s)]
    vae_states = [s for s in states if "encoder.conv_in.weight" in s] or [
        strip_prefix(s, VAE_PREFIX) for s in unet_states
        if f"{VAE_PREFIX}encoder.conv_in.weight" in s]
    if not unet_states or not vae_states:
        raise LeafnetError(
            "ldm-kl8-churches needs the LSUN-churches LDM checkpoint (lsun_churches.zip, with "
            "'model.diffusion_model.*' keys) and the kl-f8 autoencoder (kl-f8.zip); the files "
            f"given hold {'no U-Net' if not unet_states else 'no autoencoder'}"
        )
    autoencoder = AutoencoderKL(**preset.autoencoder)
    vae = convert_ldm_vae(vae_states[0], preset.autoencoder)
    check_complete(vae, {k: v for k, v in vae_states[0].items() if not k.startswith("loss.")},
                   autoencoder, "autoencoder")
    autoencoder.load_state_dict(vae.state)
    autoencoder.save_pretrained(output / "vae", safe_serialization=True)
    unet_source = (ema_unet_state(unet_states[0]) if use_ema
                   else strip_prefix(unet_states[0], UNET_PREFIX))
    unet = UNet2DModel(**preset.unet)
    set_attention_heads(unet, preset.attention_heads)
    converted = convert_ldm_unet(unet_source, preset.unet, preset.attention_heads)
    check_complete(converted, unet_source, unet, "LDM U-Net")
    unet.load_state_dict(converted.state)
    unet.save_pretrained(output / "unet", safe_serialization=True)
    write_json(output / "unet" / ATTENTION_HEADS_FILE, {"attention_heads": preset.attention_heads})
    return {"unet_weights": "ema (model_ema.*)" if use_ema else "raw (model.diffusion_model.*)",
            **_ldm_scale_factor(unet_states[0])}


def _convert_timm_teacher(spec: TeacherSpec, files: list[Path], output: Path,
                          trust_pickle: bool, options: dict[str, Any]) -> dict[str, Any]:
    """A timm ViT state dict (Meta's dinov2_vitb14_reg4_pretrain.pth) -> teacher.safetensors."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    config = options.get("architecture", spec.architecture)
    model, _ = build_teacher_model(config, grid=config["native_grid"])
    state = checkpoint_filter_fn(read_state_dict(files[0], trust_pickle), model)
    model.load_state_dict(state)
    save_teacher(output, config, model)
    return {}


def _is_torchscript(path: Path) -> bool:
    """OpenAI ships CLIP as a TorchScript archive (a zip with a code/ folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in member for member in archive.namelist())


def _convert_openai_clip(spec: TeacherSpec, files: list[Path], output: Path,
                         trust_pickle: bool, options: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ViT-B-16.pt (TorchScript) or an open_clip state dict -> the image tower."""
    from open_clip.model import build_model_from_openai_state_dict

    if _is_torchscript(files[0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            state = torch.jit.load(str(files[0]), map_location="cpu").state_dict()
    else:
        state = read_state_dict(files[0], trust_pickle)
    if "visual.conv1.weight" not in state:
        raise LeafnetError(f"{files[0]}: not a CLIP checkpoint (no visual.conv1.weight)")
    if "token_embedding.weight" in state and "visual.proj" in state and "logit_scale" in state:
        visual = build_model_from_openai_state_dict(state).visual
        visual_state = visual.state_dict()
    else:
        visual_state = strip_prefix(state, "visual.")
    config = options.get("architecture", spec.architecture)
    model, _ = build_teacher_model(config, grid=config["native_grid"])
    model.load_state_dict(visual_state)
    save_teacher(output, config, model)
    return {}


TEACHER_CONVERTERS = {"timm_state_dict": _convert_timm_teacher,
                      "openai_clip": _convert_openai_clip}
SOURCES: dict[str, tuple[list[RemoteFile], Converter]] = {
    "ldm-kl8-churches": ([
        RemoteFile("https://ommer-lab.com/files/latent-diffusion/kl-f8.zip", "kl-f8.zip"),
        RemoteFile("https://ommer-lab.com/files/latent-diffusion/lsun_churches.zip",
                   "lsun_churches.zip"),
    ], _convert_ldm),
    **{spec.entry: (list(spec.remote_files),
                    functools.partial(TEACHER_CONVERTERS[spec.source_format], spec))
       for spec in TEACHER_SPECS.values()},
}
assert set(SOURCES) == set(KNOWN)


def install(name: str, files: list[Path], trust_pickle: bool = False,
            provenance: dict | None = None, options: dict[str, Any] | None = None) -> Path:
    """Convert the original ``files`` of entry ``name`` into LEAFNET_WEIGHTS/NAME, atomically.

    ``options`` go to the converter (``unet_weights``: raw or ema for the LDM; ``preset`` or
    ``architecture``: other shapes, so that tests convert tiny files through this same path).
    ``source.json`` records the files and what the converter took from them."""
    if name not in SOURCES:
        raise LeafnetError(f"unknown weights '{name}'; known: {', '.join(SOURCES)}")
    remote, convert = SOURCES[name]
    if len(files) < (1 if name == "ldm-kl8-churches" else len(remote)):
        raise LeafnetError(f"{name} needs the file(s) {', '.join(f.filename for f in remote)}")
    final = entry_folder(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        staging.mkdir()
        taken = convert([Path(f) for f in files], staging, trust_pickle, options or {})
        write_json(staging / "source.json", {**(provenance or {
            "imported_from": [str(Path(f).resolve()) for f in files]}), **taken})
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
