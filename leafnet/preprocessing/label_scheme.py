"""The dataset's labels and how they are coded for the network and decoded back.

One object owns this, as nnU-Net's LabelManager does, so that data loading, prediction and
scoring cannot disagree. Today the network codes one mask channel: ``binary`` (one foreground
label) or ``foreground_union`` (every foreground label merged into one mask, written back as
the first foreground label). The plans' ``label_handling`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leafnet.errors import LeafnetError

MODES = ("binary", "foreground_union")


@dataclass(frozen=True)
class LabelScheme:
    labels: dict[str, int]
    mode: str
    foreground_labels: tuple[int, ...]

    @classmethod
    def from_plans(cls, labels: dict[str, int], label_handling: dict, source: str) -> LabelScheme:
        """The scheme the plans' ``labels`` and ``label_handling`` describe."""
        mode = label_handling.get("mode", "binary")
        foreground = tuple(int(v) for v in label_handling["foreground_labels"])
        if mode not in MODES:
            raise LeafnetError(f"{source}: label_handling mode '{mode}' is not one of "
                               f"{', '.join(MODES)}")
        if mode == "binary" and len(foreground) > 1:
            raise LeafnetError(f"{source}: label_handling mode 'binary' needs one foreground "
                               f"label, found {list(foreground)} (use 'foreground_union')")
        unknown = sorted(set(foreground) - set(labels.values()))
        if unknown:
            raise LeafnetError(f"{source}: foreground labels {unknown} are not in the labels "
                               f"{labels}")
        return cls(dict(labels), mode, foreground)

    @property
    def output_value(self) -> int:
        """The label value a predicted foreground pixel is written as."""
        return self.foreground_labels[0] if self.foreground_labels else 1

    @property
    def evaluated_labels(self) -> list[int]:
        """The label values a prediction is scored on."""
        return list(self.foreground_labels) or [1]

    def encode(self, label: np.ndarray) -> np.ndarray:
        """An ``(H, W)`` label image as the network's target mask ``(1, H, W)`` in {0, 1}."""
        return np.isin(np.asarray(label), self.foreground_labels)[None].astype(np.float32)

    @staticmethod
    def binarize(probability: np.ndarray) -> np.ndarray:
        """The predicted masks of probability maps (any shape): foreground above 0.5."""
        return probability > 0.5

    def decode(self, probability: np.ndarray) -> np.ndarray:
        """A foreground probability map ``(H, W)`` as a label image."""
        return self.binarize(probability).astype(np.uint8) * self.output_value
