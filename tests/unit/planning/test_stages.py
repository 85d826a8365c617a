"""The planning rule of one stage or two (planning/stages.py) on made-up fingerprints."""

from __future__ import annotations

import pytest

from leafnet.planning.stages import CROP_STAGE_PLANS_NAME, MAX_CROP_SHARE, plan_stages
from leafnet.planning.target_size import MIN_OBJECT_PIXELS
from leafnet.preprocessing.label_scheme import LabelScheme

FUNDUS_LABELS = {"background": 0, "disc": 1, "cup": 2}
FUNDUS_REGIONS = {"disc": [1, 2], "cup": [2]}


def _fingerprint(disc: list[float], cup: list[float], roi: list[float],
                 single: float, image_hw: tuple[int, int] = (2000, 2000)) -> dict:
    return {"image_size_hw": {"median": list(image_hw)},
            "labels": {"disc": {"value": 1, "object_fraction_hw_median": disc},
                       "cup": {"value": 2, "object_fraction_hw_median": cup}},
            "foreground_structure": {"object_fraction_hw_median": roi,
                                     "single_structure_case_fraction": single}}


def test_a_small_single_structure_gets_two_stages_and_each_keeps_its_pixels():
    scheme = LabelScheme.for_dataset(FUNDUS_LABELS, FUNDUS_REGIONS)
    stages = plan_stages(_fingerprint([0.17, 0.17], [0.08, 0.08], [0.17, 0.17], 1.0), scheme,
                         (128, 128))
    assert stages.next_stage is not None and stages.next_stage.plans == CROP_STAGE_PLANS_NAME
    assert stages.target_size == (128, 128)            # the disc is 21.8 px at 128
    assert stages.next_stage.target_size == (128, 128)
    assert stages.rule["extent_in_crop_px"] >= MIN_OBJECT_PIXELS
    assert stages.rule["crop_share_of_image_side"] == pytest.approx(0.34)
    assert stages.describe().startswith("two stages: the smallest trained class, cup, is 10.2")
    tiny_cup = plan_stages(_fingerprint([0.17, 0.17], [0.02, 0.02], [0.17, 0.17], 1.0), scheme,
                           (128, 128))
    assert tiny_cup.next_stage.target_size == (256, 256)


def test_no_crop_for_scattered_or_spread_foreground_and_none_needed_for_large_objects():
    scheme = LabelScheme.for_dataset(FUNDUS_LABELS, FUNDUS_REGIONS)
    scattered = plan_stages(_fingerprint([0.17, 0.17], [0.08, 0.08], [0.17, 0.17], 0.5), scheme,
                            (128, 128))
    assert scattered.next_stage is None and scattered.target_size == (256, 256)
    assert "one structure in only 50% of the cases" in scattered.describe()
    spread = plan_stages(_fingerprint([0.17, 0.17], [0.08, 0.08], [0.3, 0.3], 1.0), scheme,
                         (128, 128))
    assert spread.next_stage is None and 2 * 0.3 > MAX_CROP_SHARE
    assert "would span 60% of the image side" in spread.describe()
    large = plan_stages(_fingerprint([0.5, 0.5], [0.3, 0.3], [0.5, 0.5], 1.0), scheme,
                        (128, 128))
    assert large.next_stage is None and large.target_size == (128, 128)
