"""Plans chosen by the measured ceiling: how well each candidate plan carries the dataset's own
training masks through the shipped mask autoencoder and back.

A prediction is decoded by the mask autoencoder at the plans' size and resized to the original
image, so no model trained on a plan scores above that plan's round trip of the reference masks:
label resized to the plan's size (nearest), each class's mask encoded and decoded by the
preset's shipped autoencoder, its probability resized back (bilinear), thresholded at 0.5 and
scored against the class's original mask. Each class goes through on its own, as one mask
channel: what planning decides is whether a structure survives the latent at a size; coding
several classes in one latent is what fine-tuning the first stage on the dataset adds (the
shipped autoencoder codes one channel well and several poorly, docs/results.md). Measured on
up to ``CEILING_CASES`` training cases, per case, so a dataset whose median object is large but
whose small cases are lost scores low (a size rule on the median misses those).

The candidates, cheapest first (relative time per training step of all stages together):
one stage at the preset's size (1), two stages, the whole image then a crop around the
structure, both at the preset's size (2; where the fingerprint says the foreground is one compact
structure, stages.py), and one stage at the doubled side (3.5; docs/results.md). The
plans take the cheapest candidate whose every class reaches ``TARGET_RECONSTRUCTION_DICE``, or
comes within ``MIN_GAIN`` of the best candidate's (a dearer plan must buy at least that much).
The two-stage crop is cut around the reference, so its ceiling leaves out the coarse stage's
own misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from diffusers import AutoencoderKL

from leafnet.models.shipped_autoencoder import TARGET_RECONSTRUCTION_DICE, round_trip
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.resampling import resize_label, resize_probabilities
from leafnet.preprocessing.roi_crop import ROI_MARGIN, Box, crop, paste, roi_crop_box

CEILING_CASES = 48
MIN_GAIN = 0.01
TWO_STAGE_COST = 2.0
DOUBLED_COST = 3.5


@dataclass(frozen=True)
class Candidate:
    """One plan to measure: the whole image at ``target_size``, and with ``crop_size`` a second
    stage on the crop around the structure."""

    name: str
    target_size: tuple[int, int]
    crop_size: tuple[int, int] | None
    relative_cost: float


@dataclass(frozen=True)
class CandidateCeiling:
    """A candidate's measured ceiling: mean Dice per class of the round trip through the
    autoencoder, and of the resizing alone (what the size costs before any autoencoder)."""

    candidate: Candidate
    per_class: dict[str, float]
    resize_only: dict[str, float]

    @property
    def worst(self) -> float:
        return min(self.per_class.values())

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.candidate.name, "relative_cost": self.candidate.relative_cost,
                "ceiling_dice": {k: round(v, 4) for k, v in self.per_class.items()},
                "resize_only_dice": {k: round(v, 4) for k, v in self.resize_only.items()}}


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def candidates(preset_size: tuple[int, int], two_stages: bool) -> list[Candidate]:
    """The candidate plans, cheapest first."""
    doubled = (preset_size[0] * 2, preset_size[1] * 2)
    found = [Candidate(f"one stage {_size(preset_size)}", preset_size, None, 1.0)]
    if two_stages:
        found.append(Candidate(f"two stages {_size(preset_size)} + crop {_size(preset_size)}",
                               preset_size, preset_size, TWO_STAGE_COST))
    found.append(Candidate(f"one stage {_size(doubled)}", doubled, None, DOUBLED_COST))
    return found


def _down_and_up(autoencoder: AutoencoderKL | None, scheme: LabelScheme, labels: list[np.ndarray],
                 size: tuple[int, int], device: str) -> list[np.ndarray]:
    """Each label resized to ``size``, each class as a mask of its own through the autoencoder
    (None: not), resized back: the class probabilities ``(K, H, W)`` at each label's own size."""
    classes = len(scheme.classes)
    coded = np.stack([np.stack(scheme.class_masks(resize_label(label, size)))
                      for label in labels]).astype(np.float32)
    if autoencoder is not None:
        single = coded.reshape(-1, 1, *size)
        coded = round_trip(autoencoder, single, device).reshape(len(labels), classes, *size)
    return [np.stack([resize_probabilities(channel, label.shape) for channel in probability])
            for probability, label in zip(coded, labels, strict=True)]


def _dice(found: np.ndarray, wanted: np.ndarray) -> float:
    total = found.sum() + wanted.sum()
    return 1.0 if total == 0 else float(2 * (found & wanted).sum() / total)


def _crops(labels: list[np.ndarray], margin: float) -> list[Box]:
    return [roi_crop_box(label, margin) for label in labels]


def measure(autoencoder: AutoencoderKL | None, scheme: LabelScheme, labels: list[np.ndarray],
            candidate: Candidate, margin: float = ROI_MARGIN,
            device: str = "cpu") -> dict[str, float]:
    """Mean Dice per class of ``labels`` after ``candidate``'s round trip."""
    if candidate.crop_size is None:
        found = _down_and_up(autoencoder, scheme, labels, candidate.target_size, device)
    else:
        boxes = _crops(labels, margin)
        parts = _down_and_up(autoencoder, scheme, [crop(label, box) for label, box
                                                   in zip(labels, boxes, strict=True)],
                             candidate.crop_size, device)
        found = []
        for label, box, part in zip(labels, boxes, parts, strict=True):
            whole = np.zeros((part.shape[0], *label.shape), np.float32)
            paste(whole, part, box)
            found.append(whole)
    scores = np.array([[_dice(channel > 0.5, wanted) for channel, wanted
                        in zip(probability, scheme.class_masks(label), strict=True)]
                       for probability, label in zip(found, labels, strict=True)])
    return {item.name: float(value)
            for item, value in zip(scheme.classes, scores.mean(axis=0), strict=True)}


def measure_candidates(autoencoder: AutoencoderKL, scheme: LabelScheme, labels: list[np.ndarray],
                       options: list[Candidate], margin: float = ROI_MARGIN,
                       device: str = "cpu") -> list[CandidateCeiling]:
    """Every candidate's ceiling and its resizing-only Dice."""
    return [CandidateCeiling(option, measure(autoencoder, scheme, labels, option, margin, device),
                             measure(None, scheme, labels, option, margin, device))
            for option in options]


def choose(measured: list[CandidateCeiling]) -> CandidateCeiling:
    """The cheapest candidate whose every class reaches the target, or comes within
    ``MIN_GAIN`` of the best candidate's worst class."""
    best = max(item.worst for item in measured)
    enough = min(TARGET_RECONSTRUCTION_DICE, best - MIN_GAIN)
    return next(item for item in measured if item.worst >= enough)


def table(measured: list[CandidateCeiling], chosen: CandidateCeiling) -> str:
    """The table planning prints: each candidate's ceiling per class, its resizing-only Dice
    and its cost."""
    names = list(measured[0].per_class)
    lines = [f"{'plan':<36} {'cost':>5}  " + "  ".join(f"{n + ' ceiling':>16} {'resize only':>11}"
                                                        for n in names)]
    for item in measured:
        mark = "  <- chosen" if item is chosen else ""
        lines.append(f"{item.candidate.name:<36} {item.candidate.relative_cost:>5.1f}  "
                     + "  ".join(f"{item.per_class[n]:>16.4f} {item.resize_only[n]:>11.4f}"
                                 for n in names) + mark)
    return "\n".join(lines)
