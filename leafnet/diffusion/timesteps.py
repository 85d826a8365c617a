"""Which timesteps training draws.

LEAF predicts in one reverse step from pure noise at t = T-1, but the paper trains, as every
diffusion model does, on t drawn uniformly from 0..T-1. At small t the mask is plainly visible in
z_t (alpha is 0.73 at t = 250, 0.026 at t = 999), so much of a uniform run teaches denoising,
not segmenting the image, which is all single-step inference asks for. The other samplings
spend the steps where inference happens:

- ``uniform``: t ~ U{0, ..., T-1} (the paper);
- ``last``: t = T-1 always;
- ``top10``: t ~ U{0.9 T, ..., T-1};
- ``mix``: t = T-1 for each sample with probability 1/2, else uniform.
"""

from __future__ import annotations

import torch

TIMESTEP_SAMPLINGS = ("uniform", "last", "top10", "mix")


def draw_timesteps(sampling: str, num_train_timesteps: int, count: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``count`` training timesteps (long) drawn with ``generator`` as ``sampling`` says."""
    last = num_train_timesteps - 1
    if sampling == "uniform":
        return torch.randint(0, num_train_timesteps, (count,), generator=generator)
    if sampling == "last":
        return torch.full((count,), last, dtype=torch.long)
    if sampling == "top10":
        return torch.randint(int(0.9 * num_train_timesteps), num_train_timesteps, (count,),
                             generator=generator)
    if sampling == "mix":
        uniform = torch.randint(0, num_train_timesteps, (count,), generator=generator)
        at_last = torch.rand(count, generator=generator) < 0.5
        return torch.where(at_last, torch.full_like(uniform, last), uniform)
    raise ValueError(f"timestep sampling must be one of {TIMESTEP_SAMPLINGS}, got {sampling!r}")
