"""The region-of-interest crop of two-stage plans: the square around the largest piece, the
padding and pasting back, and the jitter of training crops."""

from __future__ import annotations

import numpy as np
import pytest

from leafnet.preprocessing.roi_crop import (
    Box,
    case_generator,
    crop,
    crop_box,
    largest_piece,
    paste,
    roi_crop_box,
)


def test_the_region_is_the_largest_piece_and_the_crop_a_square_around_it():
    mask = np.zeros((100, 200), bool)
    mask[40:60, 50:80] = True          # 20 x 30, the structure
    mask[5:7, 190:192] = True          # a speck elsewhere
    box, share = largest_piece(mask)
    assert box == Box(40, 50, 60, 80) and share == pytest.approx(600 / 604)
    assert largest_piece(np.zeros((4, 4), bool)) is None
    square = crop_box(box, (100, 200), margin=2.0)
    assert (square.height, square.width) == (60, 60)
    assert (square.top + square.bottom) / 2 == pytest.approx(50, abs=1)
    assert (square.left + square.right) / 2 == pytest.approx(65, abs=1)
    at_edge = crop_box(Box(0, 190, 10, 200), (100, 200), margin=3.0)
    assert at_edge == Box(0, 170, 30, 200)
    larger_than_image = crop_box(Box(0, 0, 40, 40), (50, 50), margin=2.0)
    assert (larger_than_image.height, larger_than_image.width) == (80, 80)


def test_crops_pad_with_zeros_and_paste_back_where_they_came_from():
    image = np.arange(3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12) + 1
    box = Box(-2, 6, 6, 14)
    part = crop(image, box)
    assert part.shape == (3, 8, 8)
    assert (part[:, :2] == 0).all() and (part[:, :, 6:] == 0).all()
    np.testing.assert_array_equal(part[:, 2:, :6], image[:, 0:6, 6:12])
    target = np.zeros_like(image)
    paste(target, part, box)
    np.testing.assert_array_equal(target[:, 0:6, 6:12], image[:, 0:6, 6:12])
    assert target[:, 6:].sum() == 0 and target[:, :, :6].sum() == 0
    label = np.zeros((30, 30), np.uint8)
    assert roi_crop_box(label) == Box(0, 0, 30, 30)


def test_training_crops_vary_in_scale_and_position_and_always_hold_the_structure():
    label = np.zeros((400, 400), np.uint8)
    label[150:200, 170:230] = 1                        # 50 x 60: the nominal crop is 120 px
    sides, tops = set(), set()
    for seed in range(60):
        box = roi_crop_box(label, 2.0, np.random.default_rng(seed))
        assert box.height == box.width
        assert box.top <= 150 and box.bottom >= 200 and box.left <= 170 and box.right >= 230
        sides.add(box.height)
        tops.add(box.top)
    assert min(sides) <= 100 and max(sides) >= 145 and len(tops) > 20
    assert roi_crop_box(label, 2.0, case_generator("case_a")) == roi_crop_box(
        label, 2.0, case_generator("case_a"))
    assert roi_crop_box(label, 2.0) == Box(115, 140, 235, 260)
