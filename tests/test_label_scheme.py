"""The label scheme: one owner of how labels are coded for the network and decoded back."""

from __future__ import annotations

import numpy as np
import pytest

from leafnet.errors import LeafnetError
from leafnet.preprocessing.label_scheme import LabelScheme

LABELS = {"background": 0, "disc": 1, "cup": 2}


def test_foreground_union_codes_every_foreground_label_and_decodes_the_first():
    scheme = LabelScheme.from_plans(LABELS, {"mode": "foreground_union",
                                             "foreground_labels": [1, 2]}, "plans.json")
    label = np.array([[0, 1], [2, 0]], np.uint8)
    np.testing.assert_array_equal(scheme.encode(label), [[[0, 1], [1, 0]]])
    np.testing.assert_array_equal(scheme.decode(np.array([[0.2, 0.7]])), [[0, 1]])
    assert scheme.evaluated_labels == [1, 2]


def test_binary_writes_its_own_foreground_value():
    scheme = LabelScheme.from_plans({"background": 0, "polyp": 3},
                                    {"mode": "binary", "foreground_labels": [3]}, "plans.json")
    np.testing.assert_array_equal(scheme.decode(np.array([[0.9, 0.1]])), [[3, 0]])


@pytest.mark.parametrize("handling, message", [
    ({"mode": "regions", "foreground_labels": [1]}, "mode 'regions' is not one of"),
    ({"mode": "binary", "foreground_labels": [1, 2]}, "needs one foreground label"),
    ({"mode": "binary", "foreground_labels": [7]}, r"foreground labels \[7\] are not in"),
])
def test_plans_that_the_scheme_cannot_honour_are_refused(handling, message):
    with pytest.raises(LeafnetError, match=f"plans.json: .*{message}"):
        LabelScheme.from_plans(LABELS, handling, "plans.json")
