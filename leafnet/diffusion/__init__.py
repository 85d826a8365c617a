"""The variance-preserving noise schedule and the eps / v / x0 parameterizations (paper Eq. 1-3)."""

from leafnet.diffusion.parameterization import (
    PREDICTION_TYPES,
    convert_prediction,
    estimate_z0,
    training_target,
)
from leafnet.diffusion.schedule import NoiseSchedule

__all__ = [
    "PREDICTION_TYPES",
    "NoiseSchedule",
    "convert_prediction",
    "estimate_z0",
    "training_target",
]
