"""Reading released checkpoints that pickle references to training-framework classes.

CompVis' ``kl-f8`` and ``lsun_churches`` checkpoints were saved by PyTorch Lightning 1.4: besides
tensors they hold references to Lightning classes (``callbacks`` is keyed by
``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``). torch's ``weights_only``
unpickler refuses them, and a full unpickler needs Lightning installed and may run code.
:func:`load_restricted` reads them with torch's ``weights_only`` unpickler plus a short
allow-list of known harmless classes, each mapped to an inert stand-in that only stores the
state it is given; any other class is refused with its name. No code from the file runs.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from leafnet.errors import LeafnetError


class InertObject:
    """Stands in for an allow-listed class: keeps its state, has no behaviour."""

    original: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert stand-in for {self.original}>"


_DICT_SUBCLASSES = ("pytorch_lightning.utilities.parsing.AttributeDict",)

# Classes that Lightning 1.x checkpoints of the CompVis releases are known to reference. They
# appear as dict keys (callback states) or as holders of plain state; none is needed to read
# the weights, so each becomes an inert stand-in (dict subclasses a plain dict).
HARMLESS_CLASSES: tuple[str, ...] = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.progress.ProgressBar",
    "pytorch_lightning.callbacks.progress.tqdm_progress.TQDMProgressBar",
    *_DICT_SUBCLASSES,
    "pytorch_lightning.utilities.enums.DistributedType",
    "pytorch_lightning.trainer.states.TrainerFn",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "argparse.Namespace",
)

def _stand_in(name: str) -> type:
    if name in _DICT_SUBCLASSES:
        return dict
    return type(f"Inert_{name.rsplit('.', 1)[1]}", (InertObject,), {"original": name})


STAND_INS: dict[str, type] = {name: _stand_in(name) for name in HARMLESS_CLASSES}


def _refused_class(error: Exception) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    return match.group(1) if match else str(error).splitlines()[0]


def load_restricted(path: Path, shown_name: str | None = None) -> Any:
    """Load ``path`` with tensors, plain containers and the inert stand-ins of
    :data:`HARMLESS_CLASSES` only; any other class is a :class:`LeafnetError` naming it."""
    shown = shown_name or str(path)
    allowed = [(stand_in, name) for name, stand_in in STAND_INS.items()]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise LeafnetError(
            f"{shown}: refers to the Python class {_refused_class(error)}, which leafnet does not "
            "unpickle (unpickling can run code; only tensors, plain containers and a short list "
            "of known harmless Lightning classes are read). If you trust the file (it came from "
            "the official source), repeat the command with --trust-pickle") from error
    except (RuntimeError, EOFError, OSError) as error:
        raise LeafnetError(f"{shown}: is not a readable PyTorch checkpoint ({error})") from error
