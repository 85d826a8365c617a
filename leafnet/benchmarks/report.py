"""Writing a benchmark's numbers with the machine they were measured on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leafnet.atomic import write_json
from leafnet.paths import results_root
from leafnet.utilities.machine import machine


def write_report(name: str, numbers: dict[str, Any], output: Path | None) -> Path:
    """Write ``numbers`` (plus the machine) to ``output`` or results/benchmarks/NAME.json."""
    path = output or results_root() / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"benchmark": name, "machine": machine(), **numbers})
    return path
