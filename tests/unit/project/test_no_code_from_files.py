"""Class C of the safety issue: no file makes leafnet run code unless the user says so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from leafnet.errors import LeafnetError
from leafnet.training.checkpointing import load_checkpoint, rng_state, save_checkpoint

LEAFNET = Path(__file__).resolve().parents[3] / "leafnet"


def _torch_load_calls() -> list[tuple[Path, ast.FunctionDef | None, ast.Call]]:
    """Every ``torch.load(...)`` call in leafnet/ with its innermost enclosing function."""
    calls = []

    def visit(node: ast.AST, path: Path, function: ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef) else function
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr == "load" and isinstance(child.func.value, ast.Name)
                    and child.func.value.id == "torch"):
                calls.append((path, function, child))
            visit(child, path, inner)

    for path in sorted(LEAFNET.rglob("*.py")):
        visit(ast.parse(path.read_text()), path, None)
    return calls


def test_every_torch_load_is_weights_only_except_behind_trust_pickle():
    calls = _torch_load_calls()
    assert calls, "no torch.load found: the scan itself is broken"
    for path, function, call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        where = f"{path.relative_to(LEAFNET.parent)}:{call.lineno}"
        assert "weights_only" in keywords, f"{where}: torch.load without weights_only"
        value = keywords["weights_only"]
        if isinstance(value, ast.Constant) and value.value is True:
            continue
        # Anything else must sit in a function that takes trust_pickle and only reaches this
        # call after an `if not trust_pickle: return ...` guard.
        assert function is not None and "trust_pickle" in [a.arg for a in function.args.args], \
            f"{where}: torch.load(weights_only={ast.unparse(value)}) outside a --trust-pickle path"
        guard = function.body[1] if isinstance(function.body[0], ast.Expr) else function.body[0]
        assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "not trust_pickle" \
            and isinstance(guard.body[-1], ast.Return), f"{where}: no 'if not trust_pickle' guard"


def test_training_checkpoints_hold_no_pickled_objects(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    save_checkpoint(path, {"trainer": "LEAFTrainer_x0", "rng": rng_state(),
                           "history": {"loss": [0.5]}})
    assert torch.load(path, weights_only=True)["history"] == {"loss": [0.5]}
    assert load_checkpoint(path)["trainer"] == "LEAFTrainer_x0"


class Payload:
    """What a hostile checkpoint would carry."""


def test_a_checkpoint_with_python_objects_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"trainer": "LEAFTrainer_x0", "payload": Payload()}, path)
    with pytest.raises(LeafnetError, match="does not unpickle"):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_one_readable_error_naming_it(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    save_checkpoint(path, {"trainer": "LEAFTrainer_x0", "weights": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(LeafnetError, match="checkpoint_latest.pth: is truncated"):
        load_checkpoint(path)
