"""Environment variables set for the length of a block (leafnet's folders are resolved when they
are asked for, so a benchmark can point them at scratch or benchmark folders)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` inside the block and restore what was there after."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
