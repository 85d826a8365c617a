"""The training log and progress.png (losses, validation Dice and its moving average, lr)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from leafnet.atomic import atomic_path  # noqa: E402


def log_line(path: Path, message: str) -> None:
    """Append a time-stamped line to the training log and echo it."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    print(line, flush=True)
    with open(path, "a") as handle:
        handle.write(line + "\n")


def moving_average(values: list[float], width: int = 5) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def plot_progress(path: Path, history: dict[str, Any]) -> None:
    """Write progress.png from ``history`` (train steps/losses/lr, val steps/dice)."""
    figure, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    steps = history["train_step"]
    for name, values in history["losses"].items():
        axes[0].plot(steps, values, label=name, linewidth=0.8)
    axes[0].set_ylabel("loss")
    axes[0].legend(loc="upper right")
    if history["val_step"]:
        axes[1].plot(history["val_step"], history["val_dice"], "o-", label="validation Dice (EMA)")
        axes[1].plot(history["val_step"], moving_average(history["val_dice"]), "--",
                     label="moving average (5)")
        axes[1].legend(loc="lower right")
    axes[1].set_ylabel("Dice")
    axes[2].plot(steps, history["lr"])
    axes[2].set_ylabel("learning rate")
    axes[2].set_xlabel("step")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)
