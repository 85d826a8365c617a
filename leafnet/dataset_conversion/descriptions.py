"""dataset.json contents shared by the converters of binary segmentation datasets."""

from __future__ import annotations

from typing import Any

from leafnet.raw_format import DatasetDescription

RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}
GRAY_CHANNELS = {"0": "gray"}


def binary_description(
    name: str,
    foreground: str,
    split: dict[str, Any],
    channels: int = 3,
    image_ending: str = ".png",
    label_ending: str = ".png",
    **metadata: str,
) -> DatasetDescription:
    """A two-label (background, ``foreground``) dataset; counts are filled in when written."""
    return DatasetDescription(
        name=name,
        channel_names=RGB_CHANNELS if channels == 3 else GRAY_CHANNELS,
        labels={"background": 0, foreground: 1},
        num_training=0,
        file_ending=label_ending,
        image_file_ending=image_ending,
        split=split,
        extra=dict(metadata),
    )
