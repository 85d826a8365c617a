"""Where an original weight file is published, and its digest when the publisher states one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    sha256: str | None = None
