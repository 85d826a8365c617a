"""The mask autoencoders that ship with leafnet, and how well one carries a dataset's masks.

Masks are generic shapes, so one mask autoencoder per preset is trained once, on a large and
varied set of shapes (``leafnet/training/shipped_first_stage.py``, made by
``tools/make_shipped_autoencoders.sh``), and shipped in ``models/shipped/<preset>/`` as a
diffusers folder (config.json and fp16 safetensors) with ``shipped.json`` (what it was trained on
and its latent scale). A dataset's first stage starts from it and is fine-tuned only where it
does not reconstruct the dataset's own masks well enough (``TARGET_RECONSTRUCTION_DICE``).

The round trip measured here is what the diffusion model is capped by: a mask coded by the
label scheme, encoded (posterior mode), decoded, read back by the label scheme, against the
mask it came from, per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from leafnet.models.autoencoder import decode_mask, encode_mask
from leafnet.models.presets import get_preset
from leafnet.models.weights.store import load_autoencoder_weights
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.utilities.json_files import read_json

SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"
SHIPPED_RECORD = "shipped.json"
TARGET_RECONSTRUCTION_DICE = 0.98
# The held-out shape Dice a shipped autoencoder needs before planning trusts its round trips
# (what the shipped ones score: shipped.json and docs/results.md).
PLANNING_MIN_SHAPE_DICE = 0.9


def shipped_folder(preset: str) -> Path | None:
    """The shipped mask autoencoder of ``preset``, or None when the preset has none (a
    pretrained preset brings its own autoencoder)."""
    folder = SHIPPED_ROOT / preset
    return folder if (folder / SHIPPED_RECORD).is_file() else None


def shipped_record(preset: str) -> dict[str, Any] | None:
    """What ``shipped.json`` says of ``preset``'s shipped autoencoder."""
    folder = shipped_folder(preset)
    return None if folder is None else read_json(folder / SHIPPED_RECORD)


def plans_by_ceiling(preset: str) -> bool:
    """Whether planning measures candidate plans with ``preset``'s shipped autoencoder: it has
    one, and that reconstructs its own held-out single-channel shapes at
    ``PLANNING_MIN_SHAPE_DICE`` or more. ``tiny``'s (minimal widths, for tests) does not: it
    would enlarge plans for its own coarseness, not the objects' size; planning then uses the
    fingerprint's size rule."""
    record = shipped_record(preset)
    return record is not None and record.get("validation", {}).get(
        "1 channel", 0.0) >= PLANNING_MIN_SHAPE_DICE


def load_shipped_autoencoder(preset: str, device: str = "cpu") -> AutoencoderKL | None:
    """The shipped mask autoencoder of ``preset`` in float32 on ``device``, in eval mode, or
    None when the preset has none."""
    folder = shipped_folder(preset)
    if folder is None:
        return None
    autoencoder = AutoencoderKL(**get_preset(preset).autoencoder)
    autoencoder.load_state_dict({key: value.float() for key, value
                                 in load_autoencoder_weights(str(folder)).items()})
    return autoencoder.to(device).eval()


@torch.no_grad()
def round_trip(autoencoder: AutoencoderKL, masks: np.ndarray, device: str = "cpu",
               batch_size: int = 16) -> np.ndarray:
    """Coded masks ``(N, C, H, W)`` through the autoencoder and back: the decoded channel
    probabilities ``(N, C, H, W)``."""
    decoded = []
    channels = masks.shape[1]
    for start in range(0, len(masks), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(masks[start:start + batch_size],
                                                      np.float32)).to(device)
        latent = encode_mask(autoencoder, batch, 1.0)
        decoded.append(decode_mask(autoencoder, latent, 1.0, channels).float().cpu().numpy())
    return np.concatenate(decoded)


def class_dice(scheme: LabelScheme, found: np.ndarray, wanted: np.ndarray) -> list[float]:
    """Dice of each of the scheme's classes between two label images (1 where both lack it)."""
    scores = []
    for mine, theirs in zip(scheme.class_masks(found), scheme.class_masks(wanted), strict=True):
        total = mine.sum() + theirs.sum()
        scores.append(1.0 if total == 0 else float(2 * (mine & theirs).sum() / total))
    return scores


def reconstruction_dice(autoencoder: AutoencoderKL, scheme: LabelScheme, masks: np.ndarray,
                        device: str = "cpu") -> np.ndarray:
    """Per case and class ``(N, K)``: the Dice of coded masks ``(N, C, H, W)`` after the round
    trip, each read back by the label scheme."""
    decoded = round_trip(autoencoder, masks, device)
    return np.array([class_dice(scheme, scheme.decode(probability), scheme.decode(mask))
                     for probability, mask in zip(decoded, masks, strict=True)])


def ceiling_by_class(autoencoder: AutoencoderKL, scheme: LabelScheme, masks: np.ndarray,
                     device: str = "cpu") -> dict[str, float]:
    """The mean :func:`reconstruction_dice` of ``masks`` per class, by class name."""
    scores = reconstruction_dice(autoencoder, scheme, masks, device).mean(axis=0)
    return {item.name: float(value) for item, value in zip(scheme.classes, scores, strict=True)}


def describe_ceiling(scheme: LabelScheme, per_class: dict[str, float]) -> str:
    """``polyp 0.987`` or ``disc 0.991, cup 0.962``, for logs."""
    return ", ".join(f"{item.name} {per_class[item.name]:.3f}" for item in scheme.classes)
