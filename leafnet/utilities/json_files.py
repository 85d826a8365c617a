"""Reading the JSON files leafnet writes (and users edit) with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leafnet.errors import LeafnetError


def read_json(path: Path, missing_fix: str | None = None) -> Any:
    """The content of ``path``; None when it is missing and ``missing_fix`` is None, else an
    error naming the file and ``missing_fix``. Invalid JSON is always an error naming it."""
    if not path.is_file():
        if missing_fix is None:
            return None
        raise LeafnetError(f"{path} is missing; {missing_fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LeafnetError(f"{path}: is not valid JSON ({error}); fix it or delete it") from error
