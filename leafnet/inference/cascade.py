"""Two-stage prediction: the coarse model finds the structure in the whole image, the
second-stage model segments a crop around it (plans with ``roi_crop``, planning/stages.py).

The crop comes from the coarse label by the same function that cut the training crops from the
reference (preprocessing/roi_crop.py). Inside the crop the second stage's probabilities replace
the coarse ones; outside it the coarse ones stay. An image in which the coarse model finds no
foreground keeps the coarse prediction, and the count of such images is kept in
``CascadePredictor.not_found``.

:func:`load_predictor` is what every caller uses to load a trained model: it returns a plain
:class:`LEAFPredictor` for one-stage plans and a :class:`CascadePredictor` for a second stage,
whose coarse model is the same trainer, preset and folds trained on the coarse plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leafnet.errors import LeafnetError
from leafnet.inference.predictor import LEAFPredictor, Prediction, SingleStepModel
from leafnet.model_store.discovery import coarse_folders
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.roi_crop import crop, paste, roi_crop_box


class CascadePredictor:
    """A coarse and a second-stage predictor used as one (the interface of LEAFPredictor)."""

    def __init__(self, coarse: LEAFPredictor, fine: LEAFPredictor) -> None:
        if fine.plans.roi_crop is None:
            raise LeafnetError("the second stage of a cascade needs plans with roi_crop")
        if coarse.plans.label_scheme.to_json() != fine.plans.label_scheme.to_json():
            raise LeafnetError("the coarse and second-stage models train different labels; plan "
                               "both stages together (leafnet_plan_and_preprocess)")
        self.coarse, self.fine = coarse, fine
        self.plans: Plans = fine.plans
        self.members: list[SingleStepModel] = fine.members
        self.batch_size = fine.batch_size
        self.not_found = 0

    def check_image(self, image: np.ndarray) -> None:
        self.fine.check_image(image)

    def predict(self, images: Sequence[np.ndarray], seed: int = 0, num_samples: int = 1,
                uncertainty: bool = False) -> list[Prediction]:
        """As :meth:`LEAFPredictor.predict`: labels and probabilities at each image's size."""
        coarse = self.coarse.predict(images, seed, num_samples, uncertainty)
        margin = self.plans.roi_crop.margin if self.plans.roi_crop else 1.0
        found = [(index, roi_crop_box(first.label, margin))
                 for index, first in enumerate(coarse) if first.label.any()]
        self.not_found += len(images) - len(found)
        crops = [crop(images[index], box) for index, box in found]
        fine = self.fine.predict(crops, seed, num_samples, uncertainty) if crops else []
        scheme = self.plans.label_scheme
        for (index, box), second in zip(found, fine, strict=True):
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
                   mirroring: bool = False) -> LEAFPredictor | CascadePredictor:
    """The model of ``folders`` (one fold, or the folds of an ensemble), with its coarse stage
    when its plans are a second stage; ``mirroring`` for both stages."""
    predictor = LEAFPredictor.from_folders(folders, checkpoint, device, batch_size, backend,
                                           fast_decoder, mirroring)
    if predictor.plans.roi_crop is None:
        return predictor
    coarse = LEAFPredictor.from_folders(coarse_folders(folders, predictor.plans), checkpoint,
                                        device, batch_size, backend, fast_decoder, mirroring)
    return CascadePredictor(coarse, predictor)


Segmenter = LEAFPredictor | CascadePredictor
