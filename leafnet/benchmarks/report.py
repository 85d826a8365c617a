"""Writing a benchmark's numbers with the machine they were measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from leafnet.atomic import write_json
from leafnet.paths import results_root


def _cpu_model() -> str:
    """The CPU's marketing name (Linux), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict[str, Any]:
    """Where numbers were measured: CPU, cores, GPU if any, Python and torch versions."""
    return {"platform": platform.platform(), "processor": _cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_report(name: str, numbers: dict[str, Any], output: Path | None) -> Path:
    """Write ``numbers`` (plus the machine) to ``output`` or results/benchmarks/NAME.json."""
    path = output or results_root() / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"benchmark": name, "machine": machine(), **numbers})
    return path
