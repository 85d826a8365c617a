"""Write files so that a crash never leaves a half-written one under the final name."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path`` keeping its ending (writers pick the format by it)."""
    name = path.name
    stem, dot, _ = name.partition(".")
    ending = name[len(stem):] if dot else ""
    return path.with_name(f".{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{ending}")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``path`` only if the block succeeds."""
    final = Path(path)
    temporary = _temporary_sibling(final)
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text``, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def copy_file(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Copy bytes from ``source`` to ``destination``, atomically."""
    with atomic_path(destination) as temporary:
        shutil.copyfile(source, temporary)
