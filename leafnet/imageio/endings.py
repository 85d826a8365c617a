"""File endings: which formats leafnet reads, which are lossless, and how to split them off."""

from __future__ import annotations

import os

NATURAL_ENDINGS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
SITK_ENDINGS = (".nii.gz", ".nii", ".mha", ".nrrd")
LOSSY_ENDINGS = (".jpg", ".jpeg")
IMAGE_ENDINGS = NATURAL_ENDINGS + SITK_ENDINGS
LABEL_ENDINGS = tuple(ending for ending in IMAGE_ENDINGS if ending not in LOSSY_ENDINGS)


def file_ending(path: str | os.PathLike[str]) -> str:
    """The lower-case ending of ``path``, treating ``.nii.gz`` as one ending."""
    name = os.fspath(path).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(name)[1]


_CANONICAL = {".jpeg": ".jpg", ".tiff": ".tif"}


def canonical_ending(path: str | os.PathLike[str]) -> str:
    """The ending of ``path`` with synonyms merged (.jpeg as .jpg, .tiff as .tif)."""
    ending = file_ending(path)
    return _CANONICAL.get(ending, ending)


def strip_ending(name: str) -> str:
    """``name`` without its ending (``case_0000.nii.gz`` -> ``case_0000``)."""
    ending = file_ending(name)
    return name[: len(name) - len(ending)] if ending else name
