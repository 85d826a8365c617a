"""Files made from a fold's weights (its ONNX graph, its fast decoder) and the weights they were
made from.

Retraining a fold writes new weights beside the old ``network.onnx`` and ``fast_decoder/``; used
silently, those would predict with the old model (and ship in its zip). Each derived file
records the digest of its source weights when it is made; :func:`check_source` compares it with
the weights there now and refuses a mismatch, naming the command that remakes the file.
"""

from __future__ import annotations

from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.paths import parse_run_folder_name
from leafnet.raw_format.locate import dataset_number, is_dataset_folder_name


def model_flags(fold_folder: Path) -> str:
    """``-d ID -tr TRAINER -p PLANS --preset PRESET -f N``: the flags that name this fold to
    the commands that remake its derived files."""
    run = fold_folder.parent
    parsed = parse_run_folder_name(run.name)
    dataset = run.parent.name
    if parsed is None or not is_dataset_folder_name(dataset) or \
            not fold_folder.name.startswith("fold_"):
        return f"... (the flags of {fold_folder})"
    trainer, plans, preset = parsed
    return (f"-d {dataset_number(dataset)} -tr {trainer} -p {plans} --preset {preset} "
            f"-f {fold_folder.name.removeprefix('fold_')}")


def check_source(derived: Path, recorded: str | None, current: str, source: Path,
                 remake: str) -> None:
    """Refuse ``derived`` unless the digest it records of its ``source`` weights is
    ``current``, their digest now."""
    if recorded == current:
        return
    state = ("records no digest of the weights it was made from (made by an older leafnet)"
             if recorded is None else
             f"was made from other weights than {source} holds now (digest {recorded}, now "
             f"{current}: the model was retrained, or the file was copied from another model)")
    raise LeafnetError(f"{derived} {state}; it would not predict with this model. Remake it: "
                       f"{remake}")
