"""LEAFPredictor: numpy images in, masks and probabilities at the images' own size out.

Preprocessing comes from the model's saved plans only: the plans' intensity window to uint8,
resampling to the planned size, ``x / 127.5 - 1``; the mask channels' probabilities are
resampled back bilinearly and decoded by the plans' label scheme (thresholds at 0.5). The noise
of image i, sample k is drawn from a generator seeded with ``seed + k``, so a prediction does
not depend on the batch it was made in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leafnet.errors import LeafnetError
from leafnet.models.network import WEIGHTS_FILE, LEAFNetwork, load_network, model_folder
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing import (
    normalize_to_uint8,
    resize_image,
    resize_probabilities,
    to_network_input,
)


@dataclass
class Prediction:
    """A label image with the dataset's values and one probability map per class (label or
    region) ``(K, H, W)``, both at the image's own size."""

    label: np.ndarray
    probability: np.ndarray


def exported_model(folder: Path, checkpoint: str = "best") -> Path:
    """The exported inference model ``model_<checkpoint>/`` of a fold folder; without a best
    model (no validation cases) the final one."""
    path = model_folder(folder, checkpoint)
    if not (path / WEIGHTS_FILE).is_file() and checkpoint == "best":
        path = model_folder(folder, "final")
    if not (path / WEIGHTS_FILE).is_file():
        raise LeafnetError(f"{folder} has no exported model ({path.name}/{WEIGHTS_FILE}); "
                           "finish its training first (leafnet_train ... --c)")
    return path


class LEAFPredictor:
    """A trained network with the plans it was trained under."""

    def __init__(self, network: LEAFNetwork, plans: Plans, device: str = "cpu",
                 batch_size: int = 4) -> None:
        self.network = network.to(device).eval()
        self.plans, self.device, self.batch_size = plans, device, batch_size

    @classmethod
    def from_folder(cls, folder: Path, checkpoint: str = "best", device: str = "cpu",
                    batch_size: int = 4) -> LEAFPredictor:
        """Load the exported model ``model_<checkpoint>/`` (EMA weights, safetensors) and
        ``plans.json`` of a fold folder; without a best model (no validation cases) the final
        one is used. No training checkpoint is unpickled."""
        path = exported_model(folder, checkpoint)
        plans = Plans.load(folder / "plans.json", "the model folder is incomplete; train again")
        return cls(load_network(path, device).eval(), plans, device, batch_size)

    def check_image(self, image: np.ndarray) -> None:
        """An error naming the expected layout unless ``image`` is ``(C, H, W)`` with the
        plans' channel count."""
        channels = self.plans.num_channels
        if image.ndim != 3 or image.shape[0] != channels:
            raise LeafnetError(f"expected an image with {channels} channel(s) (C, H, W), "
                               f"got shape {tuple(image.shape)}")

    def _noise(self, batch: int, seed: int, num_samples: int) -> torch.Tensor:
        height, width = self.plans.target_size
        shape = self.network.latent_shape((1, 3, height, width))[1:]
        draws = [torch.randn(shape, generator=torch.Generator().manual_seed(seed + k))
                 for k in range(num_samples)]
        return torch.stack(draws)[:, None].expand(num_samples, batch, *shape)

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], seed: int = 0,
                num_samples: int = 1) -> list[Prediction]:
        """Label images and per-class probabilities of ``(C, H, W)`` images."""
        for image in images:
            self.check_image(image)
        size = self.plans.target_size
        windows = self.plans.windows
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            batch = to_network_input(np.stack([resize_image(normalize_to_uint8(image, windows),
                                                            size) for image in chunk]))
            tensor = torch.from_numpy(batch).to(self.device)
            noise = self._noise(len(chunk), seed, num_samples)
            probability = self.network.predict(tensor, num_samples=num_samples, noise=noise)
            scheme = self.plans.label_scheme
            for image, maps in zip(chunk, probability.float().cpu().numpy(), strict=True):
                original = np.stack([resize_probabilities(map_, tuple(image.shape[1:]))
                                     for map_ in maps])
                results.append(Prediction(scheme.decode(original),
                                          scheme.class_probabilities(original).astype(
                                              np.float32)))
        return results
