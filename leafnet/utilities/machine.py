"""The machine code runs on: which device to use by default, and what to record beside numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from leafnet.errors import LeafnetError


def default_device() -> str:
    """cuda if there is a GPU, else Apple's mps, else cpu."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def usable_device(device: str | None) -> str:
    """``device``, checked to exist here (default: :func:`default_device`); an error names the
    fix instead of a traceback from deep inside torch."""
    if device is None:
        return default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LeafnetError(f"-device {device}: torch sees no CUDA GPU on this machine (torch "
                           f"{torch.__version__}); use -device cpu, or install a CUDA build of "
                           "torch on a machine with a GPU")
    if device == "mps" and not torch.backends.mps.is_available():
        raise LeafnetError("-device mps: Apple's Metal backend is not available here; use "
                           "-device cpu")
    return device


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


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it).
    Without it bf16 autocast is emulated and many times slower (docs/results.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: str, cpu_bf16: bool = False) -> torch.autocast:
    """bf16 autocast on CUDA, and on the CPU when ``cpu_bf16`` (the caller checks
    :func:`cpu_has_bf16`), full precision elsewhere: the one mixed-precision rule of training."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16 and device == "cpu")


def describe_precision(device: str, cpu_bf16: bool, asked_cpu_bf16: bool) -> str:
    """The precision :func:`autocast` gives a run, in words (``asked_cpu_bf16``: the trainer
    asked for bf16 on the CPU, ``cpu_bf16``: it got it)."""
    if device.startswith("cuda") or cpu_bf16:
        return "bf16 autocast"
    if asked_cpu_bf16 and device == "cpu":
        return "float32 (the trainer asks for bf16, which this CPU lacks natively)"
    return "float32"
