"""A run's targets and LR schedule: diffusers' schedule over the steps, or, with a wall-clock
budget, warm-up over steps, then the decay of diffusers' schedule as a function of how far the
run is (0 to 1), not of a step count.

A step horizon guessed from the pace has to be re-guessed as the pace changes, and each new guess
moves the LR (upward, when steps got faster): the sawtooth that progress.png showed. The spent
fraction of the budget only grows, so the LR follows diffusers' curve once, smoothly, to the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers.optimization import get_scheduler

from leafnet.errors import LeafnetError

RESOLUTION = 100_000


def decay_shape(name: str) -> Callable[[float], float]:
    """diffusers' schedule ``name`` without warm-up as a factor of the progress in [0, 1] (a
    cosine is one half period: 1 at the start, 0 at the end)."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    factor = get_scheduler(name, probe, num_warmup_steps=0, num_training_steps=RESOLUTION,
                           num_cycles=0.5).lr_lambdas[0]
    return lambda progress: float(factor(round(min(max(progress, 0.0), 1.0) * RESOLUTION)))


def budget_schedule(name: str, optimizer: torch.optim.Optimizer, warmup_steps: int,
                    progress: Callable[[int], float]) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` times ``name``'s decay at ``progress(step)``."""
    shape = decay_shape(name)

    def factor(step: int) -> float:
        return min(1.0, step / max(1, warmup_steps)) * shape(progress(step))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_scheduler(name: str, optimizer: torch.optim.Optimizer, warmup_steps: int,
                 progress: Callable[[int], float] | None,
                 num_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' schedule ``name`` (warm-up, then constant, cosine or linear decay; a cosine
    is one half period, down to zero at the end) over ``num_steps``; with a budget's
    ``progress`` (the spent fraction, or of the steps when further), the decay follows it, so
    the LR falls smoothly to the end of the budget."""
    if progress is None:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps,
                             num_training_steps=num_steps, num_cycles=0.5)
    return budget_schedule(name, optimizer, warmup_steps, progress)


def check_targets(minutes: float | None, num_steps: int | None, validate_every: int | None,
                  num_workers: int | None) -> None:
    """Refuse targets and loop settings that would train nothing or make no sense."""
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise LeafnetError(f"--minutes must be a positive number, got {minutes}")
    for flag, value in (("--steps", num_steps), ("--validate-every", validate_every)):
        if value is not None and value < 1:
            raise LeafnetError(f"{flag} must be at least 1, got {value}: a run without steps "
                               "would save untrained weights over the trained ones")
    if num_workers is not None and num_workers < 0:
        raise LeafnetError(f"--workers must be 0 or more, got {num_workers}")
