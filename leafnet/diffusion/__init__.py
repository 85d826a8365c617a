"""The variance-preserving noise schedule and the eps / v / x0 parameterizations (paper Eq. 1-3)."""

from leafnet.diffusion.parameterization import (
    PREDICTION_TYPES,
    estimate_z0,
)
from leafnet.diffusion.schedule import NoiseSchedule

__all__ = [
    "PREDICTION_TYPES",
    "NoiseSchedule",
    "estimate_z0",
]
