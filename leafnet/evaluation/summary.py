"""The evaluation summary (``summary.json``), read and written in one place: per-case metrics,
each class's means, their foreground mean, and how the masks were read.

Every caller (the evaluation command, prediction's scoring, the experiments' seed spread,
overlays, the benchmarks' tables) takes a :class:`Summary`, never the file's dict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.utilities.json_files import read_json

SUMMARY_FILE = "summary.json"
METRICS = ("Dice", "IoU", "HD95")


@dataclass(frozen=True)
class ClassInfo:
    """A scored class: its name and the label values it covers (one, or several for a region)."""

    name: str
    values: list[int]


@dataclass(frozen=True)
class Summary:
    """One evaluation: ``metric_per_case`` (reference and prediction file, metrics per class
    key), ``mean`` per class key, ``foreground_mean`` over the classes, the classes scored,
    the rules the masks were read by and notes about the references."""

    metric_per_case: list[dict[str, Any]]
    mean: dict[str, dict[str, float]]
    foreground_mean: dict[str, float]
    num_cases: int
    labels: list[int]
    classes: dict[str, ClassInfo]
    mask_rules: list[str]
    notes: list[str]
    empty_reference_convention: str

    def name_of(self, key: str) -> str:
        """The name of class ``key`` (a label value, or a region's values)."""
        return self.classes[key].name if key in self.classes else key

    def means_by_name(self) -> dict[str, dict[str, float]]:
        """Each class's means under its name."""
        return {self.name_of(key): means for key, means in self.mean.items()}

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON data: an undefined metric (HD95 of an empty mask, NaN) is null,
        since JSON has no NaN and other readers refuse Python's bare ``NaN``."""
        return _nan_to_null(asdict(self))

    def save(self, path: Path) -> None:
        """Write the summary to ``path`` atomically (its folder made as needed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: Any, source: Path | str) -> Summary:
        """``data`` (a summary file's content) checked; summaries written before classes were
        recorded name each class by its key. An error names ``source``."""
        try:
            classes = data.get("classes") or {key: {"name": key, "values": [int(key)]}
                                              for key in data["mean"] if key.isdigit()}
            data = _null_to_nan(data)
            return cls(
                metric_per_case=list(data["metric_per_case"]), mean=dict(data["mean"]),
                foreground_mean={k: float(v) for k, v in data["foreground_mean"].items()},
                num_cases=int(data["num_cases"]), labels=list(data.get("labels", [])),
                classes={key: ClassInfo(str(item["name"]), [int(v) for v in item["values"]])
                         for key, item in classes.items()},
                mask_rules=list(data.get("mask_rules", [])), notes=list(data.get("notes", [])),
                empty_reference_convention=str(data.get("empty_reference_convention", "")))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise LeafnetError(f"{source}: not an evaluation summary ({error!r}); score the "
                               "predictions again (leafnet_evaluate)") from None

    @classmethod
    def load(cls, path: Path, missing_fix: str | None = None) -> Summary | None:
        """The summary at ``path``; None when it is missing and ``missing_fix`` is None."""
        data = read_json(path, missing_fix)
        return None if data is None else cls.from_json(data, path)


def _nan_to_null(data: Any) -> Any:
    """``data`` with every float that is not finite replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _nan_to_null(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_nan_to_null(value) for value in data]
    return data


def _null_to_nan(data: Any, key: str = "") -> Any:
    """The metrics of ``data`` with null read back as NaN (what :func:`_nan_to_null` wrote)."""
    if data is None and key in METRICS:
        return math.nan
    if isinstance(data, dict):
        return {name: _null_to_nan(value, name) for name, value in data.items()}
    if isinstance(data, list):
        return [_null_to_nan(value, key) for value in data]
    return data
