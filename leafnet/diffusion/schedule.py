"""The noise schedule, taken from diffusers' DDPMScheduler.

LDM's "linear" betas 0.0015..0.0155 are diffusers' ``scaled_linear`` (linear in sqrt(beta)),
the schedule the pretrained LDM U-Net was trained with. LEAF's own code uses plain ``linear``
betas instead; leafnet follows the paper and the pretrained weights.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.0015
BETA_END = 0.0155
BETA_SCHEDULE = "scaled_linear"


class NoiseSchedule:
    """alpha_t = sqrt(alphabar_t), sigma_t = sqrt(1 - alphabar_t), and noising, in float32."""

    def __init__(
        self,
        num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
        beta_start: float = BETA_START,
        beta_end: float = BETA_END,
        beta_schedule: str = BETA_SCHEDULE,
    ) -> None:
        self.scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            clip_sample=False,
        )
        self.num_train_timesteps = num_train_timesteps
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(torch.float32)

    @property
    def last_timestep(self) -> int:
        """t = T - 1, where LEAF's single reverse step starts."""
        return self.num_train_timesteps - 1

    def _gather(self, values: torch.Tensor, timesteps: torch.Tensor,
                like: torch.Tensor) -> torch.Tensor:
        picked = values.to(like.device)[timesteps.to(like.device).long()]
        return picked.reshape(-1, *([1] * (like.ndim - 1))).to(torch.float32)

    def alpha(self, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """sqrt(alphabar_t), shaped to broadcast against ``like``."""
        return self._gather(self.alphas_cumprod.sqrt(), timesteps, like)

    def sigma(self, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """sqrt(1 - alphabar_t), shaped to broadcast against ``like``."""
        return self._gather((1 - self.alphas_cumprod).sqrt(), timesteps, like)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """z_t = alpha_t z0 + sigma_t eps (diffusers' add_noise)."""
        return self.scheduler.add_noise(z0, noise, timesteps.to(z0.device))
