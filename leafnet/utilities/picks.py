"""Evenly spaced picks from a list: a fixed, order-independent sample of cases (what a first
stage's or a plan's reconstruction ceiling is measured on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

Item = TypeVar("Item")


def evenly_spaced(items: Sequence[Item], count: int) -> list[Item]:
    """Up to ``count`` items of ``items``, evenly spaced from the first to the last, each once
    and in order (all of them when there are no more than ``count``)."""
    if not items or count <= 0:
        return []
    picks = np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))
    return [items[int(index)] for index in picks]
