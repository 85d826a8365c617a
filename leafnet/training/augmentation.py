"""Data augmentation with batchgenerators' transforms, as a pure function of (seed, step).

Spatial (rotation, scaling, elastic deformation; the same transform for image and mask, masks
by nearest neighbour) and intensity (brightness, contrast, gamma, Gaussian noise; image only).
batchgenerators draws from numpy's global generator and, for the noise variance, from Python's
``random``: both are seeded from (seed, step) around each batch and restored afterwards, so a
batch is the same whichever loader worker makes it and a resumed run sees exactly the batches
an uninterrupted one would.

Teacher features cached per case and flip state describe the unaugmented view, so the
distillation trainers that read the cache keep flips only (see LEAFTrainer); with the teacher
run online the features follow the augmented image.
"""

from __future__ import annotations

import random

import numpy as np
from batchgenerators.transforms.abstract_transforms import Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import GaussianNoiseTransform
from batchgenerators.transforms.spatial_transforms import SpatialTransform

AUGMENTATIONS = ("flips", "full")


def full_augmentation(size: tuple[int, int]) -> Compose:
    """The ``full`` transforms for images of ``size``: nnU-Net-like 2D ranges, milder elastic
    deformation (natural images), each transform on a fraction of the samples."""
    return Compose([
        SpatialTransform(
            size, patch_center_dist_from_border=None, do_elastic_deform=True,
            alpha=(0.0, 200.0), sigma=(9.0, 13.0), do_rotation=True,
            angle_x=(-np.pi / 6, np.pi / 6), do_scale=True, scale=(0.8, 1.25),
            border_mode_data="constant", border_cval_data=-1.0, order_data=1,
            border_mode_seg="constant", border_cval_seg=0, order_seg=0, random_crop=False,
            p_el_per_sample=0.2, p_scale_per_sample=0.3, p_rot_per_sample=0.3),
        BrightnessMultiplicativeTransform((0.8, 1.2), p_per_sample=0.3),
        ContrastAugmentationTransform((0.75, 1.25), p_per_sample=0.3),
        GammaTransform((0.7, 1.5), retain_stats=True, p_per_sample=0.3),
        GaussianNoiseTransform((0.0, 0.01), p_per_sample=0.15),
    ])


def augment(transform: Compose, images: np.ndarray, masks: np.ndarray, seed: int,
            step: int) -> tuple[np.ndarray, np.ndarray]:
    """``transform`` applied to a batch ``(B, C, H, W)`` of network inputs and their masks
    ``(B, K, H, W)``, seeded by (seed, step); images are clipped back to [-1, 1], masks keep
    their coded values (nearest-neighbour resampling)."""
    saved, saved_python = np.random.get_state(), random.getstate()
    state = int(np.random.SeedSequence([seed, step, 2]).generate_state(1)[0])
    np.random.seed(state)
    random.seed(state)
    try:
        out = transform(data=images.astype(np.float32), seg=masks.astype(np.float32))
    finally:
        np.random.set_state(saved)
        random.setstate(saved_python)
    return np.clip(out["data"], -1, 1).astype(np.float32), out["seg"].astype(np.float32)
