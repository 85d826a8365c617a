"""The training log and progress.png (losses, validation Dice and its moving average, lr).

Trainers log to the ``leafnet.training`` logger; while a run is active its records are also
written to the run's ``training_log.txt``. Showing them on the console is the application's
choice (the command-line tools call :func:`log_to_console`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from leafnet.atomic import atomic_path

LOGGER = logging.getLogger("leafnet.training")
PLOT_EVERY_SECONDS = 60.0
# Fixed margins that fit the axis labels: matplotlib's tight_layout measured them again on every
# plot, and cost more than the drawing (0.17 of 0.24 s per plot).
MARGINS = {"left": 0.11, "right": 0.98, "top": 0.98, "bottom": 0.06, "hspace": 0.08}
FORMAT = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")


class _Stdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (it may be replaced after set-up)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def log_to_console() -> None:
    """Show leafnet's log records (INFO and up) on stdout, time-stamped like the log file, and
    only there (not also through a handler some library put on the root logger)."""
    logger = logging.getLogger("leafnet")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(handler, _Stdout) for handler in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(FORMAT)
        logger.addHandler(handler)


@contextmanager
def training_log(path: Path) -> Iterator[logging.Logger]:
    """The training logger, with its records appended to ``path`` until the block ends."""
    handler = logging.FileHandler(path)
    handler.setFormatter(FORMAT)
    LOGGER.setLevel(logging.INFO)
    LOGGER.addHandler(handler)
    try:
        yield LOGGER
    finally:
        LOGGER.removeHandler(handler)
        handler.close()


def moving_average(values: list[float], width: int = 5) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def plot_progress(path: Path, history: dict[str, Any], force: bool = False) -> None:
    """Write progress.png from ``history`` (train steps/losses/lr, val steps/dice): at most
    every ``PLOT_EVERY_SECONDS`` (a plot costs about 0.1 s, more than a validation interval of
    a small model), and always when ``force`` (the run's last interval). A plain ``Figure``,
    not pyplot: no global figure registry to fill or close."""
    if not force and path.is_file() and time.time() - path.stat().st_mtime < PLOT_EVERY_SECONDS:
        return
    figure = Figure(figsize=(9, 10))
    axes = figure.subplots(3, 1, sharex=True)
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
    figure.subplots_adjust(**MARGINS)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)


def interval_summary(history: dict[str, Any], steps: int, metrics: dict[str, float]) -> str:
    """The log line's figures for the last ``steps`` steps: mean losses, the median seconds per
    step, and the validation metrics when there are some."""
    recent = {k: float(np.mean(v[-steps:])) for k, v in history["losses"].items()}
    text = ", ".join(f"{k} {v:.4f}" for k, v in recent.items())
    text += f", {np.median(history['step_seconds'][-steps:]):.2f} s/step"
    if metrics:
        text += f", val Dice {metrics['dice']:.4f}"
        if "iou" in metrics:
            text += f", IoU {metrics['iou']:.4f}"
    return text
