"""The dataset's labels and how they are coded for the network and decoded back.

One object owns this, as nnU-Net's LabelManager does, so that data loading, prediction and
scoring cannot disagree. The mask autoencoder codes three-channel images, so every scheme codes
the mask in at most three channels (``C``), each in {0, 1}:

- ``exclusive``: one channel per foreground class, each class one label value (labels never
  overlap). A pixel is background where no channel passes 0.5, else the class of the strongest
  channel. One class is the binary case.
- ``regions``: a region is a set of label values, as in nnU-Net's region-based training (the
  optic disc {1, 2} contains the cup {2}). Written back as label values in the classes' order:
  each region paints its ``write`` value over the previous ones where it is present. Each
  region has its own channel, present where it passes 0.5 (nnU-Net's region channels).
- ``code``: 4 to 7 mutually exclusive labels in three channels: class ``i`` (1-based) is the
  three bits of ``i``, one per channel; a pixel's bits decode to its class (an index without a
  class decodes to background).

The plans' ``label_handling`` holds the mode and the classes (name, label values, value
written); planning chooses them from dataset.json and ``--labels``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leafnet.errors import LeafnetError

MODES = ("exclusive", "regions", "code")
MAX_CHANNELS = 3
MAX_CODED_LABELS = 2 ** MAX_CHANNELS - 1
THRESHOLD = 0.5


@dataclass(frozen=True)
class LabelClass:
    """One predicted and evaluated class: a label (one value) or a region (several)."""

    name: str
    values: tuple[int, ...]
    write: int

    @property
    def key(self) -> str:
        """The class's key in summaries: its label value, or nnU-Net's ``(1, 2)`` for a region."""
        return str(self.values[0]) if len(self.values) == 1 else str(self.values)

    def to_json(self) -> dict:
        return {"name": self.name, "values": list(self.values), "write": self.write}


def _legacy_classes(labels: dict[str, int], handling: dict) -> tuple[str, list[LabelClass]]:
    """Plans written before multi-class support: ``binary`` (one foreground label) or
    ``foreground_union`` (all foreground labels as one region written as the first)."""
    foreground = tuple(int(v) for v in handling["foreground_labels"])
    names = {value: name for name, value in labels.items()}
    if handling.get("mode", "binary") == "foreground_union":
        name = "+".join(names.get(v, str(v)) for v in foreground)
        return "regions", [LabelClass(name, foreground, foreground[0])]
    if len(foreground) != 1:
        raise LeafnetError(f"label_handling mode 'binary' needs one foreground label, found "
                           f"{list(foreground)}")
    return "exclusive", [LabelClass(names.get(foreground[0], str(foreground[0])), foreground,
                                    foreground[0])]


@dataclass(frozen=True)
class LabelScheme:
    labels: dict[str, int]
    mode: str
    classes: tuple[LabelClass, ...]

    @classmethod
    def from_plans(cls, labels: dict[str, int], label_handling: dict, source: str) -> LabelScheme:
        """The scheme the plans' ``labels`` and ``label_handling`` describe; errors name
        ``source``."""
        try:
            if "classes" in label_handling:
                mode = label_handling["mode"]
                classes = [LabelClass(str(c["name"]), tuple(int(v) for v in c["values"]),
                                      int(c["write"])) for c in label_handling["classes"]]
            else:
                mode, classes = _legacy_classes(labels, label_handling)
            scheme = cls(dict(labels), mode, tuple(classes))
            scheme.check()
        except LeafnetError as error:
            raise LeafnetError(f"{source}: {error}") from None
        return scheme

    @classmethod
    def for_dataset(cls, labels: dict[str, int], regions: dict[str, list[int]] | None = None,
                    names: list[str] | None = None) -> LabelScheme:
        """Planning's choice: a region dataset trains its regions (in dataset.json's order),
        any other its foreground labels as exclusive classes, one channel each up to three,
        the bit code up to seven. ``names`` trains only those labels or regions (the paper's
        cup-only REFUGE2); the others are background in training and not scored."""
        available = list(regions) if regions else [
            name for name, value in sorted(labels.items(), key=lambda item: item[1]) if value]
        unknown = [name for name in names or [] if name not in available]
        if unknown or (names is not None and len(set(names)) != len(names)):
            raise LeafnetError(f"--labels {' '.join(names or [])}: choose distinct names among "
                               f"{', '.join(available)}" + (f" ({unknown} unknown)" if unknown
                                                            else ""))
        chosen = [name for name in available if names is None or name in names]
        if regions:
            classes = tuple(LabelClass(n, tuple(regions[n]), labels[n]) for n in chosen)
            mode = "regions"
        else:
            classes = tuple(LabelClass(n, (labels[n],), labels[n]) for n in chosen)
            mode = "exclusive" if len(classes) <= MAX_CHANNELS else "code"
        scheme = cls(dict(labels), mode, classes)
        scheme.check()
        return scheme

    def check(self) -> None:
        if self.mode not in MODES:
            raise LeafnetError(f"label_handling mode '{self.mode}' is not one of "
                               f"{', '.join(MODES)}")
        if not self.classes:
            raise LeafnetError("label_handling has no classes to train")
        known = set(self.labels.values()) - {0}
        for item in self.classes:
            unknown = sorted(set(item.values) - known) + ([item.write] if item.write not in
                                                          known else [])
            if unknown:
                raise LeafnetError(f"class '{item.name}' uses label values {unknown} that are "
                                   f"not foreground labels of {self.labels}")
        if self.mode == "code":
            if len(self.classes) > MAX_CODED_LABELS:
                raise LeafnetError(
                    f"{len(self.classes)} mutually exclusive labels; one mask latent codes at "
                    f"most {MAX_CODED_LABELS} (three bits). Train a subset with "
                    "leafnet_plan_and_preprocess --labels NAME ..., or merge labels")
        elif len(self.classes) > MAX_CHANNELS:
            raise LeafnetError(
                f"{len(self.classes)} {self.mode} classes; the mask latent codes at most "
                f"{MAX_CHANNELS} (one per RGB channel)"
                + (" for regions. Choose up to three with --labels NAME ..." if
                   self.mode == "regions" else "; use mode 'code' for up to 7 labels"))
        if self.mode != "regions" and any(len(item.values) != 1 for item in self.classes):
            raise LeafnetError(f"mode '{self.mode}' needs one label value per class; classes "
                               "with several values are regions (mode 'regions')")

    def to_json(self) -> dict:
        return {"mode": self.mode, "classes": [item.to_json() for item in self.classes]}

    @property
    def coding(self) -> dict:
        """What a first stage trained on these masks learnt to code (recorded with it, so a
        diffusion trainer can refuse one made for other classes or another coding)."""
        kind = "bits" if self.mode == "code" else "channels"
        return {**self.to_json(), "coding": kind, "mask_channels": self.num_channels}

    @property
    def num_channels(self) -> int:
        """Mask channels the autoencoder codes (1 to 3)."""
        return MAX_CHANNELS if self.mode == "code" else len(self.classes)

    @property
    def foreground_values(self) -> list[int]:
        """The dataset's foreground label values, ascending (what evaluation looks for)."""
        return sorted(value for value in self.labels.values() if value)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 1

    def describe(self) -> str:
        """The scheme in words, for planning's output and the README."""
        parts = ", ".join(f"{c.name} = {'{' + ', '.join(map(str, c.values)) + '}'}"
                          + (f" written as {c.write}" if self.mode == "regions" else "")
                          for c in self.classes)
        words = {"exclusive": "mutually exclusive labels, one mask channel each",
                 "regions": "regions, one mask channel each, painted in this order",
                 "code": "mutually exclusive labels coded as three bits"}[self.mode]
        return f"{words}: {parts}"

    def encode(self, label: np.ndarray) -> np.ndarray:
        """An ``(H, W)`` label image as the network's target mask ``(C, H, W)`` in {0, 1}."""
        label = np.asarray(label)
        if self.mode == "code":
            index = np.zeros(label.shape, np.int64)
            for position, item in enumerate(self.classes, start=1):
                index[label == item.values[0]] = position
            return np.stack([(index >> bit) & 1 for bit in range(MAX_CHANNELS)]).astype(
                np.float32)
        return np.stack([np.isin(label, item.values) for item in self.classes]).astype(
            np.float32)

    def decode(self, probability: np.ndarray) -> np.ndarray:
        """Channel probabilities ``(C, H, W)`` (or coded target masks) as a label image."""
        probability = np.asarray(probability)
        output = np.zeros(probability.shape[1:], np.uint8)
        if self.mode == "regions":
            for item, channel in zip(self.classes, probability, strict=True):
                output[channel > THRESHOLD] = item.write
            return output
        if self.mode == "code":
            bits = (probability > THRESHOLD).astype(np.int64)
            index = sum(bits[bit] << bit for bit in range(MAX_CHANNELS))
            for position, item in enumerate(self.classes, start=1):
                output[index == position] = item.write
            return output
        strongest = probability.argmax(axis=0)
        found = probability.max(axis=0) > THRESHOLD
        writes = np.array([item.write for item in self.classes], np.uint8)
        output[found] = writes[strongest[found]]
        return output

    def class_masks(self, label: np.ndarray) -> list[np.ndarray]:
        """Each class's boolean mask in a label image (a region: any of its values)."""
        return [np.isin(label, item.values) for item in self.classes]

    def class_probabilities(self, probability: np.ndarray) -> np.ndarray:
        """Per-class probability maps ``(K, H, W)`` from the channel probabilities: the channels
        themselves; for the bit code the product of each bit's agreement with the class."""
        if self.mode != "code":
            return probability
        maps = []
        for position in range(1, len(self.classes) + 1):
            agreement = [probability[bit] if (position >> bit) & 1 else 1 - probability[bit]
                         for bit in range(MAX_CHANNELS)]
            maps.append(np.prod(agreement, axis=0))
        return np.stack(maps).astype(probability.dtype)
