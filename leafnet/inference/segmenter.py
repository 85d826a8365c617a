"""What every trained model offers its callers, one stage or several: the ``Segmenter``
protocol that prediction, scoring and the benchmarks are written against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from leafnet.preprocessing.plans import Plans

if TYPE_CHECKING:
    from leafnet.inference.predictor import Prediction, SingleStepModel


class Segmenter(Protocol):
    """Images ``(C, H, W)`` in, a :class:`Prediction` per image at its own size out; ``plans``
    are those of the last stage (its labels are the model's), ``members`` its folds."""

    plans: Plans
    members: list[SingleStepModel]
    batch_size: int

    def check_image(self, image: np.ndarray) -> None: ...

    def predict(self, images: Sequence[np.ndarray], seed: int = 0, num_samples: int = 1,
                uncertainty: bool = False) -> list[Prediction]: ...
