"""One stage or two: how planning keeps the smallest trained structure, from the fingerprint.

The rule, printed by planning and recorded in the plans' ``target_size_rule``:

1. If the smallest trained class keeps ``MIN_OBJECT_PIXELS`` across at the preset's size, one
   stage at that size.
2. Else, if the foreground is one compact structure (its largest piece holds 90% of the
   foreground in at least ``MIN_SINGLE_STRUCTURE`` of the training cases) and a crop of
   ``ROI_MARGIN`` times that structure's longer side is at most ``MAX_CROP_SHARE`` of the image's
   side (so the crop magnifies at least twice), two stages: ``leafnetPlans`` sees the whole
   image at the smallest size (preset's or a doubling) where the structure keeps
   ``MIN_OBJECT_PIXELS`` and finds it; ``leafnetPlans_roi`` sees the crop around it at the
   smallest size where the smallest class keeps them. Two models at the preset's size cost
   about twice one; a doubled side costs three to four times and magnifies only twice.
3. Else one stage, enlarged as target_size.py says (an object spread over the image, or several
   structures, would not fit one crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leafnet.planning.target_size import (
    MIN_OBJECT_PIXELS,
    candidate_sizes,
    choose_target_size,
    class_fractions,
    extent,
    first_keeping,
)
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import DEFAULT_PLANS_NAME
from leafnet.preprocessing.roi_crop import ROI_MARGIN

ROI_PLANS_NAME = f"{DEFAULT_PLANS_NAME}_roi"
MIN_SINGLE_STRUCTURE = 0.8
MAX_CROP_SHARE = 0.5


@dataclass(frozen=True)
class StagePlan:
    """The coarse (or only) plans' size and rule, and the second stage's entry if any."""

    target_size: tuple[int, int]
    rule: dict[str, Any]
    cascade: dict[str, Any] | None

    def describe(self) -> str:
        return self.rule["decision"]


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def plan_stages(fingerprint: dict[str, Any], scheme: LabelScheme,
                preset_size: tuple[int, int], margin: float = ROI_MARGIN) -> StagePlan:
    """The module's rule applied to one dataset's fingerprint and trained classes."""
    single = choose_target_size(fingerprint, scheme, preset_size)
    structure = fingerprint.get("foreground_structure") or {}
    fractions = class_fractions(fingerprint, scheme)
    one_stage = StagePlan(single.target_size, single.to_json(), None)
    if not single.enlarged or not structure or not fractions:
        return one_stage
    roi = structure["object_fraction_hw_median"]
    image_hw = fingerprint["image_size_hw"]["median"]
    crop_side = margin * max(roi[0] * image_hw[0], roi[1] * image_hw[1])
    crop_share = crop_side / min(image_hw)
    compact = structure["single_structure_case_fraction"] >= MIN_SINGLE_STRUCTURE
    if not compact or crop_share > MAX_CROP_SHARE:
        why = (f"the foreground is one structure in only "
               f"{structure['single_structure_case_fraction']:.0%} of the cases"
               if not compact else
               f"a crop around the foreground would span {crop_share:.0%} of the image side")
        rule = dict(single.to_json())
        rule["decision"] += f"; no two-stage crop: {why}"
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
        f"({margin:g}x its longer side) spans {crop_share:.0%} of the image side. "
        f"{DEFAULT_PLANS_NAME} ({_size(coarse_size)}, the structure "
        f"{extent(roi, coarse_size):.1f} px) finds it in the whole image; {ROI_PLANS_NAME} "
        f"({_size(crop_size)}, {smallest} {extent(in_crop, crop_size):.1f} px) segments the crop "
        f"around it. Train both; --target-size H W plans one stage instead")
    rule = {"rule": "one stage while the smallest trained class keeps "
                    f"{MIN_OBJECT_PIXELS} px at the preset's size; else two stages when the "
                    f"foreground is one structure (>= {MIN_SINGLE_STRUCTURE:.0%} of the cases) "
                    f"whose {margin:g}x crop spans <= {MAX_CROP_SHARE:.0%} of the image side; "
                    "else one enlarged stage",
            "preset_size": list(preset_size), "chosen": list(coarse_size),
            "smallest_class": smallest, "extent_at_preset_px": single.extent_at_preset,
            "crop_share_of_image_side": round(crop_share, 3),
            "extent_in_crop_px": round(extent(in_crop, crop_size), 1),
            "decision": decision}
    cascade = {"roi_plans": ROI_PLANS_NAME, "roi_target_size": list(crop_size),
               "margin": margin}
    return StagePlan(coarse_size, rule, cascade)
