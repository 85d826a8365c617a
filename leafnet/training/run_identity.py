"""A run's identity: the settings that make its weights what they are, recorded in the fold
folder as ``run_settings.json`` when the run starts and compared when it is continued (``--c``).

Continuing a run with another seed, lambda, first stage, preset or plans would silently mix two
experiments in one set of weights, so it is refused, naming each difference. The target (steps
and minutes) is part of the identity too: a continuation that changes it says so with
``extend=True`` (``--extend``), and the recorded target is updated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.utilities.json_files import read_json

RUN_SETTINGS_FILE = "run_settings.json"
TARGET_KEYS = ("steps", "minutes")


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: recorded -> current`` for every setting that differs (missing ones included)."""
    return [f"{key}: {recorded.get(key, 'not recorded')!r} -> {current.get(key, 'not set')!r}"
            for key in sorted(set(recorded) | set(current))
            if recorded.get(key) != current.get(key)]


def record_run_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Record the settings of a run that starts (or, extended, continues) in ``folder``."""
    write_json(folder / RUN_SETTINGS_FILE, settings)


def check_continuation(folder: Path, settings: dict[str, Any], extend: bool = False,
                       write: bool = True) -> str:
    """Refuse to continue the run in ``folder`` with other ``settings``; with ``extend`` the
    target may change. Record what changed (or was not recorded) when ``write`` (the process
    that writes the run's files). Return a line for the log, empty when nothing needs saying."""
    path = folder / RUN_SETTINGS_FILE
    recorded = read_json(path)
    if recorded is None:
        if write:
            record_run_settings(folder, settings)
        return (f"{path} was missing (a run of an older leafnet): recorded the settings of "
                "this continuation, which could not be compared")
    changed = differences(recorded, settings)
    changed_target = [line for line in changed if line.split(":")[0] in TARGET_KEYS]
    other = [line for line in changed if line not in changed_target]
    if other:
        raise LeafnetError(
            f"--c would continue the run in {folder} with other settings than it was started "
            f"with ({'; '.join(other)}). Continue with the recorded settings, or start a new "
            f"run: without --c (it starts over), or in another results folder")
    if changed_target and not extend:
        raise LeafnetError(
            f"--c would continue the run in {folder} with another target "
            f"({'; '.join(changed_target)}). Give the recorded target, or add --extend to "
            "train it to the new one (the LR schedule then decays to the new end)")
    if changed_target and write:
        record_run_settings(folder, settings)
    if changed_target:
        return f"the run's target changed with --extend: {'; '.join(changed_target)}"
    return ""
