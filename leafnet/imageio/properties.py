"""What a reader learned about a file besides its pixels, as plain JSON-able data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ImageProperties:
    """Size, channels and (for medical formats) geometry of one 2D image file.

    ``spacing``, ``origin`` and ``direction`` are SimpleITK's, in the file's own dimension
    (``sitk_dimension`` is 3 for a 2D slice stored as a one-slice volume); they are ``None``
    for natural formats.
    """

    shape: tuple[int, int]
    channels: int
    dtype: str
    has_alpha: bool = False
    mode: str | None = None
    spacing: tuple[float, ...] | None = None
    origin: tuple[float, ...] | None = None
    direction: tuple[float, ...] | None = None
    sitk_dimension: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A dict that :meth:`from_json` turns back into equal properties."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageProperties:
        """Rebuild properties from :meth:`to_json`'s output."""
        values = dict(data)
        for key in ("shape", "spacing", "origin", "direction"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)
