"""Two stages at prediction: the crop stage inside the coarse stage's crop, stages followed
back through the plans' links (recursively, loops refused), and the links of older plans."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from leafnet.errors import LeafnetError
from leafnet.inference.predictor import LEAFPredictor
from leafnet.inference.two_stages import TwoStagePredictor
from leafnet.model_store.discovery import previous_stage_folders, stage_folders
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.roi_crop import Box, largest_piece


class _Member(torch.nn.Module):
    """A fake single-step model: one mask channel, 1 inside a fixed box of its input."""

    def __init__(self, box: tuple[slice, slice] | None) -> None:
        super().__init__()
        self.box = box

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (image_shape[0], 4, image_shape[2] // 8, image_shape[3] // 8)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(image.shape[0], 1, *image.shape[2:])
        if self.box is not None:
            out[:, :, self.box[0], self.box[1]] = 1.0
        return out


def _plans(previous: str | None, name: str = "leafnetPlans") -> Plans:
    content = {"plans_name": name, "data_identifier": "x", "target_size": [64, 64],
               "num_channels": 3,
               "normalisation": {"windows": [{"lower": 0, "upper": 255}] * 3},
               "labels": {"background": 0, "spot": 1},
               "label_handling": LabelScheme.for_dataset({"background": 0, "spot": 1}).to_json(),
               "batch_size": 2, "preset": "tiny"}
    if previous is not None:
        content["previous_stage"] = {"plans": previous, "margin": 2.0}
    return Plans.from_json(content, "test plans")


def test_the_crop_stage_replaces_the_coarse_prediction_inside_the_crop_only():
    coarse = LEAFPredictor(_Member((slice(16, 32), slice(16, 32))), _plans(None))
    crop_stage = LEAFPredictor(_Member((slice(16, 48), slice(16, 48))),
                               _plans("leafnetPlans", "leafnetPlans_roi"))
    two = TwoStagePredictor(coarse, crop_stage)
    image = np.zeros((3, 128, 128), np.uint8)
    label = two.predict([image])[0].label
    # coarse: rows/cols 32:64 of 128 px; crop twice that around it: 16:80; the crop stage marks
    # the middle half of the crop, 32:64 again, so the label equals the coarse one there.
    found = largest_piece(label == 1)
    assert found[0] == Box(32, 32, 64, 64) and found[1] == 1.0
    empty = TwoStagePredictor(LEAFPredictor(_Member(None), _plans(None)), crop_stage)
    assert not empty.predict([image, image])[0].label.any() and empty.not_found == 2
    assert "in 2 image(s) the coarse stage found no foreground" in empty.describe()
    with pytest.raises(LeafnetError, match="needs plans with previous_stage"):
        TwoStagePredictor(coarse, coarse)
    with pytest.raises(LeafnetError, match="its previous stage is leafnetPlans, not other"):
        TwoStagePredictor(LEAFPredictor(_Member(None), _plans(None, "other")), crop_stage)


def test_a_stage_can_follow_a_two_stage_model_the_graph_is_followed_recursively():
    """Three stages: the second crops around the first's find, the third around the second's;
    each level of the predictor is a Segmenter."""
    first = LEAFPredictor(_Member((slice(16, 32), slice(16, 32))), _plans(None))
    second = LEAFPredictor(_Member((slice(16, 48), slice(16, 48))),
                           _plans("leafnetPlans", "stage2"))
    third = LEAFPredictor(_Member((slice(0, 64), slice(0, 64))), _plans("stage2", "stage3"))
    chained = TwoStagePredictor(TwoStagePredictor(first, second), third)
    label = chained.predict([np.zeros((3, 128, 128), np.uint8)])[0].label
    # the third stage marks its whole crop: twice the second's 32 px find around its centre
    assert largest_piece(label == 1)[0] == Box(16, 16, 80, 80)


def test_plans_of_older_leafnet_read_their_stage_links_under_todays_names():
    old = {"data_identifier": "x", "target_size": [64, 64], "num_channels": 3,
           "normalisation": {"windows": [{"lower": 0, "upper": 255}] * 3},
           "labels": {"background": 0, "spot": 1},
           "label_handling": LabelScheme.for_dataset({"background": 0, "spot": 1}).to_json(),
           "batch_size": 2, "preset": "tiny"}
    coarse = Plans.from_json({**old, "cascade": {"roi_plans": "leafnetPlans_roi",
                                                 "roi_target_size": [128, 96], "margin": 2.5}},
                             "old coarse plans")
    assert coarse.next_stage.plans == "leafnetPlans_roi"
    assert coarse.next_stage.target_size == (128, 96) and coarse.next_stage.margin == 2.5
    crop_stage = Plans.from_json({**old, "roi_crop": {"coarse_plans": "leafnetPlans",
                                                      "margin": 2.5, "training_jitter": True}},
                                 "old crop plans")
    assert crop_stage.previous_stage.plans == "leafnetPlans" and crop_stage.previous_stage.jitter
    with pytest.raises(LeafnetError, match="next_stage target size"):
        Plans.from_json({**old, "next_stage": {"plans": "a", "target_size": [100, 100],
                                               "margin": 2}}, "bad plans")


def test_a_crop_stage_without_its_coarse_stage_names_the_training_command(tmp_path):
    fold = tmp_path / "Dataset997_LeafnetFundus" / "LEAFTrainer_x0__leafnetPlans_roi__tiny" \
        / "fold_0"
    fold.mkdir(parents=True)
    with pytest.raises(LeafnetError, match="leafnet_train Dataset997_LeafnetFundus "
                                           "LEAFTrainer_x0 -p leafnetPlans -f 0 --preset tiny"):
        previous_stage_folders([fold], _plans("leafnetPlans", "leafnetPlans_roi"))


def test_a_loop_in_the_stage_links_is_refused(tmp_path):
    runs = tmp_path / "Dataset997_LeafnetFundus"
    for name, previous in (("a", "b"), ("b", "a")):
        fold = runs / f"LEAFTrainer_x0__{name}__tiny" / "fold_0"
        (fold / "model_final").mkdir(parents=True)
        (fold / "model_final" / "network.safetensors").write_bytes(b"")
        (fold / "plans.json").write_text(json.dumps(_plans(previous, name).json))
    with pytest.raises(LeafnetError, match="leads back to .*a loop"):
        stage_folders([runs / "LEAFTrainer_x0__a__tiny" / "fold_0"])
