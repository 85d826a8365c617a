"""The label scheme: one owner of how labels are coded for the network and decoded back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leafnet.errors import LeafnetError
from leafnet.models.autoencoder import mask_to_rgb, rgb_to_mask
from leafnet.preprocessing.label_scheme import LabelScheme

LABELS = {"background": 0, "disc": 1, "cup": 2}
SEVEN = {"background": 0, **{f"l{v}": v for v in range(1, 8)}}


def _through_input_space(scheme: LabelScheme, label: np.ndarray) -> np.ndarray:
    """Code a label image, map it to the autoencoder's RGB input and back, decode it."""
    coded = torch.from_numpy(scheme.encode(label))[None]
    rgb = mask_to_rgb(coded)
    assert rgb.shape == (1, 3, *label.shape) and set(rgb.unique().tolist()) <= {-1.0, 1.0}
    return scheme.decode(rgb_to_mask(rgb, scheme.num_channels)[0].numpy())


@pytest.mark.parametrize("labels, regions, names, values", [
    ({"background": 0, "polyp": 1}, None, None, [0, 1]),
    (LABELS, None, None, [0, 1, 2]),
    ({"background": 0, "a": 1, "b": 2, "c": 3}, None, None, [0, 1, 2, 3]),
    (LABELS, {"disc": [1, 2], "cup": [2]}, None, [0, 1, 2]),
    (SEVEN, None, None, list(range(8))),
    ({"background": 0, **{f"l{v}": v for v in range(1, 6)}}, None, None, list(range(6))),
])
def test_every_scheme_round_trips_through_the_autoencoder_input_space(labels, regions, names,
                                                                      values):
    scheme = LabelScheme.for_dataset(labels, regions, names)
    rng = np.random.default_rng(0)
    label = rng.choice(values, size=(12, 10)).astype(np.uint8)
    np.testing.assert_array_equal(_through_input_space(scheme, label), label)


def test_planning_chooses_the_mode_by_the_number_and_kind_of_labels():
    assert LabelScheme.for_dataset({"background": 0, "polyp": 1}).mode == "exclusive"
    assert LabelScheme.for_dataset(LABELS).num_channels == 2
    assert LabelScheme.for_dataset(LABELS, {"disc": [1, 2], "cup": [2]}).mode == "regions"
    coded = LabelScheme.for_dataset(SEVEN)
    assert (coded.mode, coded.num_channels, len(coded.classes)) == ("code", 3, 7)


def test_binary_codes_one_channel_replicated_to_rgb_as_before():
    scheme = LabelScheme.for_dataset({"background": 0, "polyp": 1})
    mask = torch.from_numpy(scheme.encode(np.array([[0, 1]], np.uint8)))[None]
    rgb = mask_to_rgb(mask)
    assert torch.equal(rgb, (mask * 2 - 1).expand(-1, 3, -1, -1))
    decoded = torch.tensor([[[[0.2, -0.9]], [[0.4, -0.7]], [[0.0, -1.0]]]])
    assert torch.allclose(rgb_to_mask(decoded), ((decoded + 1) / 2).mean(1, keepdim=True))


def test_two_channels_repeat_the_last_in_the_spare_rgb_channel_and_decode_its_mean():
    mask = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])
    np.testing.assert_array_equal(mask_to_rgb(mask)[0, :, 0].numpy(),
                                  [[-1, 1], [1, -1], [1, -1]])
    decoded = torch.tensor([[[[0.2, -0.9]], [[0.4, -0.7]], [[0.0, -1.0]]]])
    expected = torch.stack([(decoded[:, 0] + 1) / 2, ((decoded[:, 1:] + 1) / 2).mean(1)], 1)
    assert torch.allclose(rgb_to_mask(decoded, 2), expected)
    np.testing.assert_array_equal(mask_to_rgb(torch.ones(1, 3, 1, 1))[0, :, 0, 0], [1, 1, 1])


def test_nested_regions_get_a_channel_each_painted_in_order_and_scored_as_regions():
    scheme = LabelScheme.for_dataset(LABELS, {"disc": [1, 2], "cup": [2]})
    assert scheme.num_channels == 2 and scheme.coding["coding"] == "channels"
    np.testing.assert_array_equal(scheme.encode(np.array([[0, 1, 2]])),
                                  [[[0, 1, 1]], [[0, 0, 1]]])
    probability = np.array([[[0.1, 0.9, 0.6, 0.3]], [[0.2, 0.8, 0.4, 0.7]]])
    label = scheme.decode(probability)
    np.testing.assert_array_equal(label, [[0, 2, 1, 2]])
    np.testing.assert_array_equal(scheme.class_probabilities(probability), probability)
    disc, cup = scheme.class_masks(label)
    np.testing.assert_array_equal(disc, [[False, True, True, True]])
    np.testing.assert_array_equal(cup, [[False, True, False, True]])
    assert [c.key for c in scheme.classes] == ["(1, 2)", "2"]


def test_regions_that_do_not_nest_get_a_channel_each():
    labels = {"background": 0, "a": 1, "b": 2, "c": 3}
    overlapping = LabelScheme.from_plans(labels, {"mode": "regions", "classes": [
        {"name": "ab", "values": [1, 2], "write": 1},
        {"name": "bc", "values": [2, 3], "write": 3}]}, "plans.json")
    assert overlapping.num_channels == 2
    np.testing.assert_array_equal(overlapping.encode(np.array([[1, 2, 3]])),
                                  [[[1, 1, 0]], [[0, 1, 1]]])
    np.testing.assert_array_equal(overlapping.decode(np.array([[[0.9, 0.1]], [[0.2, 0.7]]])),
                                  [[1, 3]])


def test_exclusive_labels_take_the_strongest_channel_above_the_threshold():
    scheme = LabelScheme.for_dataset(LABELS)
    probability = np.array([[[0.9, 0.6, 0.3]], [[0.1, 0.7, 0.4]]])
    np.testing.assert_array_equal(scheme.decode(probability), [[1, 2, 0]])


def test_bit_code_probabilities_are_one_map_per_label_and_agree_with_the_decoded_label():
    scheme = LabelScheme.for_dataset(SEVEN)
    probability = np.random.default_rng(1).uniform(size=(3, 5, 5))
    maps = scheme.class_probabilities(probability)
    assert maps.shape == (7, 5, 5)
    with_background = np.concatenate([1 - maps.sum(0, keepdims=True), maps])
    assert np.all(with_background >= -1e-9)
    np.testing.assert_array_equal(scheme.decode(probability), with_background.argmax(0))


def test_a_subset_of_labels_is_trained_when_chosen():
    cup_only = LabelScheme.for_dataset(LABELS, {"disc": [1, 2], "cup": [2]}, ["cup"])
    assert [c.name for c in cup_only.classes] == ["cup"] and cup_only.num_channels == 1
    np.testing.assert_array_equal(cup_only.encode(np.array([[0, 1, 2]])), [[[0, 0, 1]]])
    np.testing.assert_array_equal(cup_only.decode(np.array([[[0.2, 0.9]]])), [[0, 2]])
    with pytest.raises(LeafnetError, match="choose distinct names among disc, cup"):
        LabelScheme.for_dataset(LABELS, {"disc": [1, 2], "cup": [2]}, ["rim"])


def test_plans_of_older_leafnet_versions_still_load():
    union = LabelScheme.from_plans(LABELS, {"mode": "foreground_union",
                                            "foreground_labels": [1, 2]}, "plans.json")
    label = np.array([[0, 1], [2, 0]], np.uint8)
    np.testing.assert_array_equal(union.encode(label), [[[0, 1], [1, 0]]])
    np.testing.assert_array_equal(union.decode(np.array([[[0.2, 0.7]]])), [[0, 1]])
    binary = LabelScheme.from_plans({"background": 0, "polyp": 3},
                                    {"mode": "binary", "foreground_labels": [3]}, "plans.json")
    np.testing.assert_array_equal(binary.decode(np.array([[[0.9, 0.1]]])), [[3, 0]])
    planned = LabelScheme.for_dataset(LABELS)
    assert LabelScheme.from_plans(LABELS, planned.to_json(), "plans.json") == planned


@pytest.mark.parametrize("labels, regions, message", [
    ({"background": 0, **{f"l{v}": v for v in range(1, 9)}}, None,
     "8 mutually exclusive labels; one mask latent codes at most 7"),
    ({"background": 0, "a": 1, "b": 2, "c": 3, "d": 4},
     {"a": [1, 2, 3, 4], "b": [2, 3, 4], "c": [3, 4], "d": [4]},
     "4 regions classes; the mask latent codes at most 3"),
])
def test_more_labels_than_the_scheme_codes_are_refused_with_the_fix(labels, regions, message):
    with pytest.raises(LeafnetError, match=message + ".*--labels"):
        LabelScheme.for_dataset(labels, regions)


@pytest.mark.parametrize("handling, message", [
    ({"mode": "rgb", "classes": [{"name": "a", "values": [1], "write": 1}]},
     "mode 'rgb' is not one of"),
    ({"mode": "binary", "foreground_labels": [1, 2]}, "needs one foreground label"),
    ({"mode": "exclusive", "classes": [{"name": "a", "values": [7], "write": 7}]},
     r"label values \[7, 7\] that are not"),
    ({"mode": "exclusive", "classes": [{"name": "a", "values": [1, 2], "write": 1}]},
     "one label value per class"),
])
def test_plans_that_the_scheme_cannot_honour_are_refused(handling, message):
    with pytest.raises(LeafnetError, match=f"plans.json: .*{message}"):
        LabelScheme.from_plans(LABELS, handling, "plans.json")
