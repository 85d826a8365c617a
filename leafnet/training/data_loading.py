"""Batches from the preprocessed arrays, as a pure function of (seed, step).

Which cases and which flips make up batch ``step`` depends only on the seed and the step, so a
resumed run sees exactly the batches an uninterrupted one would, however many loader workers
run. batchgenerators' MultiThreadedAugmenter runs the workers: worker ``i`` of ``n`` produces
steps ``start + i``, ``start + i + n``, ... and the augmenter returns them in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from batchgenerators.dataloading.data_loader import SlimDataLoaderBase
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import (
    SingleThreadedAugmenter,
)
from batchgenerators.transforms.abstract_transforms import Compose

from leafnet.preprocessing.preprocessed_data import PreprocessedCases, apply_flip
from leafnet.training.augmentation import augment
from leafnet.utilities.processes import die_with_parent


def batch_plan(seed: int, step: int, num_cases: int, batch_size: int,
               flips: bool) -> tuple[np.ndarray, np.ndarray]:
    """Case indices ``(B,)`` and flip states ``(B, 2)`` (vertical, horizontal) of batch ``step``."""
    rng = np.random.default_rng([seed, step])
    indices = rng.integers(0, num_cases, batch_size)
    flip = rng.integers(0, 2, (batch_size, 2)).astype(bool) if flips else np.zeros(
        (batch_size, 2), dtype=bool)
    return indices, flip


class StepLoader(SlimDataLoaderBase):
    """batchgenerators loader yielding the batches of consecutive steps from ``start_step``."""

    def __init__(self, cases: PreprocessedCases, batch_size: int, seed: int, start_step: int,
                 flips: bool, num_workers: int, transform: Compose | None = None) -> None:
        super().__init__(cases, batch_size, max(1, num_workers))
        self.seed, self.start_step, self.flips = seed, start_step, flips
        self.transform = transform
        self.produced = 0

    def generate_train_batch(self) -> dict[str, Any]:
        if self.produced == 0:
            die_with_parent()
        workers = self.number_of_threads_in_multithreaded
        step = self.start_step + self.thread_id + self.produced * workers
        self.produced += 1
        indices, flip = batch_plan(self.seed, step, len(self._data), self.batch_size, self.flips)
        images, masks = [], []
        for index, state in zip(indices, flip, strict=True):
            image, mask = self._data.image_and_mask(int(index))
            images.append(apply_flip(image, state))
            masks.append(apply_flip(mask, state))
        images, masks = np.stack(images), np.stack(masks)
        if self.transform is not None:
            images, masks = augment(self.transform, images, masks, self.seed, step)
        return {"step": step, "image": images, "mask": masks, "case_index": indices,
                "flip": flip, "views_fixed": self.transform is None}


def make_loader(cases: PreprocessedCases, batch_size: int, seed: int, start_step: int,
                flips: bool = True, num_workers: int = 2, transform: Compose | None = None):
    """An iterator over batches of steps ``start_step, start_step + 1, ...``; ``transform``
    (augmentation.py) augments each batch after the flips."""
    loader = StepLoader(cases, batch_size, seed, start_step, flips, num_workers, transform)
    if num_workers <= 0:
        return SingleThreadedAugmenter(loader, None)
    return MultiThreadedAugmenter(loader, None, num_workers, num_cached_per_queue=2,
                                  seeds=None, pin_memory=False)
