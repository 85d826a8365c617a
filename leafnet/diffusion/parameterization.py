"""What the U-Net predicts, and how the clean latent z0 is recovered from it (paper Eq. 1-3).

With z_t = alpha z0 + sigma eps and alpha^2 + sigma^2 = 1:

- eps:  target eps,                    z0 = (z_t - sigma eps) / alpha
- v:    target v = alpha eps - sigma z0, z0 = alpha z_t - sigma v
- x0:   target z0,                     z0 = output

The conversions run in float32 whatever the autocast dtype: at t = 999 alpha is 0.026, so an
eps error is amplified about 38 times by the division.
"""

from __future__ import annotations

import torch

from leafnet.diffusion.schedule import NoiseSchedule

PREDICTION_TYPES = ("eps", "v", "x0")


def _check(kind: str) -> None:
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, got {kind!r}")


def estimate_z0(kind: str, output: torch.Tensor, z_t: torch.Tensor, timesteps: torch.Tensor,
                schedule: NoiseSchedule) -> torch.Tensor:
    """The clean latent implied by a network ``output`` of ``kind`` at ``z_t``, in float32."""
    _check(kind)
    output, z_t = output.float(), z_t.float()
    if kind == "x0":
        return output
    alpha, sigma = schedule.alpha(timesteps, z_t), schedule.sigma(timesteps, z_t)
    if kind == "eps":
        return (z_t - sigma * output) / alpha
    return alpha * z_t - sigma * output
