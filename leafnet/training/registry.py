"""Finding trainer classes by name, in leafnet and in a user folder (LEAFNET_EXTRA_TRAINERS)."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.training import trainers
from leafnet.training.loop import Trainer


def _import_builtin() -> None:
    for module in pkgutil.iter_modules(trainers.__path__):
        importlib.import_module(f"{trainers.__name__}.{module.name}")


def _import_extra() -> None:
    folder = os.environ.get("LEAFNET_EXTRA_TRAINERS")
    if not folder:
        return
    for path in sorted(Path(folder).glob("*.py")):
        name = f"leafnet_extra_trainers.{path.stem}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def all_trainers() -> dict[str, type[Trainer]]:
    """Every subclass of the training loop that is found by name (not the fast decoder's,
    which ``leafnet_distill_decoder`` builds from a fold folder), by class name."""
    _import_builtin()
    _import_extra()
    found = {}
    pending = [Trainer]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass.found_by_name:
                found[subclass.__name__] = subclass
            pending.append(subclass)
    return found


def find_trainer(name: str) -> type[Trainer]:
    """The trainer class called ``name``; a typo lists the closest names."""
    available = all_trainers()
    if name in available:
        return available[name]
    close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise LeafnetError(f"no trainer named '{name}'{hint} (all trainers: "
                       f"{', '.join(sorted(available))}; your own go in a folder named by "
                       "LEAFNET_EXTRA_TRAINERS)")
