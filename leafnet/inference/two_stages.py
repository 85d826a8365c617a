"""Two-stage prediction: the coarse stage finds the structure in the whole image, the crop stage
segments a crop around it (plans linked by ``previous_stage``, planning/stages.py).

The crop comes from the coarse stage's label by the same function that cut the training crops
from the reference (preprocessing/roi_crop.py). Inside the crop the crop stage's probabilities
replace the coarse ones; outside it the coarse ones stay. An image in which the coarse stage
finds no foreground keeps the coarse prediction, and the count of such images is kept in
``TwoStagePredictor.not_found``.

:func:`load_predictor` is what every caller uses to load a trained model: it follows the plans'
``previous_stage`` links back to the coarse stage and returns a plain :class:`LEAFPredictor` for a
one-stage model, else a :class:`TwoStagePredictor` whose coarse stage is itself any
:class:`Segmenter` (the same trainer, preset and folds under the previous plans).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leafnet.errors import LeafnetError
from leafnet.inference.predictor import LEAFPredictor, Prediction, SingleStepModel
from leafnet.inference.segmenter import Segmenter
from leafnet.model_store.discovery import stage_folders
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.roi_crop import crop, paste, roi_crop_box


class TwoStagePredictor:
    """A coarse stage (any segmenter) and a crop stage used as one :class:`Segmenter`."""

    def __init__(self, coarse: Segmenter, crop_stage: LEAFPredictor) -> None:
        link = crop_stage.plans.previous_stage
        if link is None:
            raise LeafnetError(f"{crop_stage.plans.source}: a crop stage needs plans with "
                               "previous_stage")
        if link.plans != coarse.plans.plans_name:
            raise LeafnetError(f"{crop_stage.plans.source}: its previous stage is {link.plans}, "
                               f"not {coarse.plans.plans_name}")
        if coarse.plans.label_scheme.to_json() != crop_stage.plans.label_scheme.to_json():
            raise LeafnetError("the coarse and crop stages train different labels; plan both "
                               "stages together (leafnet_plan_and_preprocess)")
        self.coarse, self.crop_stage = coarse, crop_stage
        self.margin = link.margin
        self.plans: Plans = crop_stage.plans
        self.members: list[SingleStepModel] = crop_stage.members
        self.batch_size = crop_stage.batch_size
        self.not_found = 0

    def check_image(self, image: np.ndarray) -> None:
        self.crop_stage.check_image(image)

    def describe(self) -> str:
        """What the stages did, for the log."""
        return (f"two stages: {self.coarse.plans.plans_name} found the structure in the whole "
                f"image, {self.plans.plans_name} segmented a crop ({self.margin:g}x its size) "
                "around it" + (f"; in {self.not_found} image(s) the coarse stage found no "
                               "foreground and its (empty) prediction was kept"
                               if self.not_found else ""))

    def predict(self, images: Sequence[np.ndarray], seed: int = 0, num_samples: int = 1,
                uncertainty: bool = False) -> list[Prediction]:
        """As :meth:`LEAFPredictor.predict`: labels and probabilities at each image's size."""
        coarse = self.coarse.predict(images, seed, num_samples, uncertainty)
        found = [(index, roi_crop_box(first.label, self.margin))
                 for index, first in enumerate(coarse) if first.label.any()]
        self.not_found += len(images) - len(found)
        crops = [crop(images[index], box) for index, box in found]
        cropped = self.crop_stage.predict(crops, seed, num_samples, uncertainty) if crops else []
        scheme = self.plans.label_scheme
        for (index, box), second in zip(found, cropped, strict=True):
            first = coarse[index]
            assert first.channels is not None and second.channels is not None
            channels = first.channels.copy()
            paste(channels, second.channels, box)
            spread = first.uncertainty
            if spread is not None and second.uncertainty is not None:
                spread = spread.copy()
                paste(spread, second.uncertainty, box)
            coarse[index] = Prediction(scheme.decode(channels), scheme.class_probabilities(
                channels).astype(np.float32), spread, channels)
        return coarse


def load_predictor(folders: Sequence[Path], checkpoint: str = "best", device: str = "cpu",
                   batch_size: int = 4, backend: str = "torch", fast_decoder: bool = False,
                   mirroring: bool = False) -> Segmenter:
    """The model of ``folders`` (one fold, or the folds of an ensemble) with every stage before
    it (its plans' ``previous_stage``, followed back); the options hold for every stage."""
    options = (checkpoint, device, batch_size, backend, fast_decoder, mirroring)
    stages = stage_folders(folders)
    predictor: Segmenter = LEAFPredictor.from_folders(stages[0], *options)
    for later in stages[1:]:
        predictor = TwoStagePredictor(predictor, LEAFPredictor.from_folders(later, *options))
    return predictor
