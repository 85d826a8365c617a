"""Reading one case of a raw dataset: its channel files stacked, and its label."""

from __future__ import annotations

import numpy as np

from leafnet.imageio import ImageProperties, read_image, read_label
from leafnet.raw_format.cases import CaseFiles


def read_case(
    case: CaseFiles,
) -> tuple[np.ndarray, np.ndarray | None, list[ImageProperties]]:
    """The ``(C, H, W)`` image of all channel files, the ``(H, W)`` label (or None), and the
    properties of each image file (the first one's geometry is what predictions are written with).
    """
    arrays, properties = zip(*(read_image(path) for path in case.images), strict=True)
    image = np.concatenate(arrays, axis=0)
    label = read_label(case.label)[0] if case.label is not None else None
    return image, label, list(properties)


def source_signature(case: CaseFiles) -> dict[str, list[int]]:
    """Size and modification time of each file of ``case``: cheap evidence that it is unchanged."""
    paths = list(case.images) + ([case.label] if case.label is not None else [])
    signature = {}
    for path in paths:
        status = path.stat()
        signature[path.name] = [status.st_size, status.st_mtime_ns]
    return signature
