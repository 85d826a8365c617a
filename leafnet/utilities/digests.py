"""Short SHA-256 digests of files and folders of weights: what ties a run, an ONNX graph or a
fast decoder to the exact bytes it was made from."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the file's bytes (read in chunks: weights
    files run to gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def weights_digest(folder: Path) -> str:
    """One digest of every ``*.safetensors`` file in ``folder`` (by name and content)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(f"{path.name}:{file_digest(path)};".encode())
    return digest.hexdigest()[:16]
