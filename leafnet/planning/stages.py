"""One stage or two (a coarse stage and a crop stage): how planning keeps the smallest
trained structure.

Where the preset ships a mask autoencoder, the plans are chosen by the measured ceiling of the
training masks at each candidate plan (ceiling.py). Otherwise (a pretrained preset), by the
fingerprint's object sizes; this rule, printed by planning and recorded in the plans'
``target_size_rule``:

1. If the smallest trained class keeps ``MIN_OBJECT_PIXELS`` across at the preset's size, one
   stage at that size.
2. Else, if the foreground is one compact structure (its largest piece holds 90% of the
   foreground in at least ``MIN_SINGLE_STRUCTURE`` of the training cases) and a crop of
   ``ROI_MARGIN`` times that structure's longer side is at most ``MAX_CROP_SHARE`` of the image's
   side (so the crop magnifies at least twice), two stages: the coarse stage ``leafnetPlans``
   sees the whole
   image at the smallest size (preset's or a doubling) where the structure keeps
   ``MIN_OBJECT_PIXELS`` and finds it; the crop stage ``leafnetPlans_roi`` sees the crop around it
   at the
   smallest size where the smallest class keeps them. Two models at the preset's size cost
   about twice one; a doubled side costs three to four times and magnifies only twice.
3. Else one stage, enlarged as target_size.py says (an object spread over the image, or several
   structures, would not fit one crop).

The two are linked in their plans as nnU-Net links its cascade: the coarse stage's
``next_stage`` names the crop stage, the crop stage's ``previous_stage`` the coarse one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from diffusers import AutoencoderKL

from leafnet.models.shipped_autoencoder import TARGET_RECONSTRUCTION_DICE
from leafnet.planning.ceiling import MIN_GAIN, candidates, choose, measure_candidates, table
from leafnet.planning.target_size import (
    MIN_OBJECT_PIXELS,
    candidate_sizes,
    choose_target_size,
    class_fractions,
    extent,
    first_keeping,
)
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import DEFAULT_PLANS_NAME, NextStage
from leafnet.preprocessing.roi_crop import ROI_MARGIN

CROP_STAGE_PLANS_NAME = f"{DEFAULT_PLANS_NAME}_roi"
MIN_SINGLE_STRUCTURE = 0.8
MAX_CROP_SHARE = 0.5


@dataclass(frozen=True)
class StagePlan:
    """The coarse (or only) stage's size and rule, and its link to a crop stage if any."""

    target_size: tuple[int, int]
    rule: dict[str, Any]
    next_stage: NextStage | None

    def describe(self) -> str:
        return self.rule["decision"]


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def two_stage_obstacle(fingerprint: dict[str, Any], margin: float = ROI_MARGIN) -> str | None:
    """Why a crop around one structure cannot serve this dataset (None when it can): the
    foreground is not one compact structure, or its crop would not magnify it at least twice."""
    structure = fingerprint.get("foreground_structure") or {}
    if not structure:
        return "the fingerprint has no foreground structure"
    compact = structure["single_structure_case_fraction"] >= MIN_SINGLE_STRUCTURE
    if not compact:
        return (f"the foreground is one structure in only "
                f"{structure['single_structure_case_fraction']:.0%} of the cases")
    share = crop_share(fingerprint, margin)
    if share > MAX_CROP_SHARE:
        return f"a crop around the foreground would span {share:.0%} of the image side"
    return None


def crop_share(fingerprint: dict[str, Any], margin: float = ROI_MARGIN) -> float:
    """The side of the median crop around the structure as a share of the image's shorter side."""
    roi = fingerprint["foreground_structure"]["object_fraction_hw_median"]
    image_hw = fingerprint["image_size_hw"]["median"]
    return margin * max(roi[0] * image_hw[0], roi[1] * image_hw[1]) / min(image_hw)


def plan_by_ceiling(fingerprint: dict[str, Any], scheme: LabelScheme,
                    preset_size: tuple[int, int], labels: list[np.ndarray],
                    autoencoder: AutoencoderKL, margin: float = ROI_MARGIN) -> StagePlan:
    """The cheapest candidate plan whose measured ceiling is good enough (ceiling.py)."""
    obstacle = two_stage_obstacle(fingerprint, margin)
    measured = measure_candidates(autoencoder, scheme, labels,
                                  candidates(preset_size, obstacle is None), margin)
    chosen = choose(measured)
    name = chosen.candidate.name
    decision = (f"{name}: the cheapest plan whose round trip of {len(labels)} training masks "
                f"through the shipped mask autoencoder reaches Dice "
                f"{TARGET_RECONSTRUCTION_DICE:g} for every class or comes within {MIN_GAIN:g} "
                f"of the best plan's ({', '.join(f'{k} {v:.3f}' for k, v in chosen.per_class.items())})"
                + (f"; no two-stage candidate: {obstacle}" if obstacle else "")
                + ("; train both stages" if chosen.candidate.crop_size else "")
                + "; --target-size H W overrides this")
    rule = {"rule": "measured ceiling: the cheapest of one stage at the preset's size, two "
                    "stages, one stage at twice its side, whose every class reaches "
                    f"{TARGET_RECONSTRUCTION_DICE:g} or comes within {MIN_GAIN:g} of the best",
            "preset_size": list(preset_size), "chosen": list(chosen.candidate.target_size),
            "smallest_class": min(measured[0].per_class, key=measured[0].per_class.get),
            "ceiling_cases": len(labels),
            "candidates": [item.to_json() for item in measured],
            "table": table(measured, chosen), "decision": decision}
    crop_size = chosen.candidate.crop_size
    next_stage = None if crop_size is None else NextStage(CROP_STAGE_PLANS_NAME, crop_size, margin)
    return StagePlan(chosen.candidate.target_size, rule, next_stage)


def plan_stages(fingerprint: dict[str, Any], scheme: LabelScheme,
                preset_size: tuple[int, int], margin: float = ROI_MARGIN,
                labels: list[np.ndarray] | None = None,
                autoencoder: AutoencoderKL | None = None) -> StagePlan:
    """The measured-ceiling rule (plan_by_ceiling) where there are training ``labels`` and a
    shipped ``autoencoder`` to measure with; else the module's size rule on the fingerprint."""
    if labels and autoencoder is not None:
        return plan_by_ceiling(fingerprint, scheme, preset_size, labels, autoencoder, margin)
    single = choose_target_size(fingerprint, scheme, preset_size)
    structure = fingerprint.get("foreground_structure") or {}
    fractions = class_fractions(fingerprint, scheme)
    one_stage = StagePlan(single.target_size, single.to_json(), None)
    if not single.enlarged or not structure or not fractions:
        return one_stage
    roi = structure["object_fraction_hw_median"]
    image_hw = fingerprint["image_size_hw"]["median"]
    crop_side = margin * max(roi[0] * image_hw[0], roi[1] * image_hw[1])
    obstacle = two_stage_obstacle(fingerprint, margin)
    if obstacle is not None:
        rule = dict(single.to_json())
        rule["decision"] += f"; no two-stage crop: {obstacle}"
        return StagePlan(single.target_size, rule, None)
    smallest = single.smallest_class
    in_crop = [fractions[smallest][axis] * image_hw[axis] / crop_side for axis in (0, 1)]
    sizes = candidate_sizes(preset_size)
    coarse_size = first_keeping(roi, sizes)
    crop_size = first_keeping(in_crop, sizes)
    decision = (
        f"two stages: the smallest trained class, {smallest}, is {single.extent_at_preset:.1f} "
        f"px across at the preset's {_size(preset_size)} (under the {MIN_OBJECT_PIXELS} px, two "
        f"latent pixels, that keep its shape), and the foreground is one structure "
        f"({structure['single_structure_case_fraction']:.0%} of the cases) whose crop "
        f"({margin:g}x its longer side) spans {crop_share(fingerprint, margin):.0%} of the "
        "image side. "
        f"{DEFAULT_PLANS_NAME} ({_size(coarse_size)}, the structure "
        f"{extent(roi, coarse_size):.1f} px) finds it in the whole image; {CROP_STAGE_PLANS_NAME} "
        f"({_size(crop_size)}, {smallest} {extent(in_crop, crop_size):.1f} px) segments the crop "
        f"around it. Train both; --target-size H W plans one stage instead")
    rule = {"rule": "one stage while the smallest trained class keeps "
                    f"{MIN_OBJECT_PIXELS} px at the preset's size; else two stages when the "
                    f"foreground is one structure (>= {MIN_SINGLE_STRUCTURE:.0%} of the cases) "
                    f"whose {margin:g}x crop spans <= {MAX_CROP_SHARE:.0%} of the image side; "
                    "else one enlarged stage",
            "preset_size": list(preset_size), "chosen": list(coarse_size),
            "smallest_class": smallest, "extent_at_preset_px": single.extent_at_preset,
            "crop_share_of_image_side": round(crop_share(fingerprint, margin), 3),
            "extent_in_crop_px": round(extent(in_crop, crop_size), 1),
            "decision": decision}
    return StagePlan(coarse_size, rule, NextStage(CROP_STAGE_PLANS_NAME, crop_size, margin))
