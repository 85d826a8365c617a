"""Writing an experiment's table: Markdown and CSV in the paper's layout (Dice and IoU in %),
the JSON with every run's numbers and paths, and the validation-Dice-vs-steps plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from leafnet.atomic import atomic_path, write_json  # noqa: E402


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def class_names(result: dict[str, Any]) -> list[str]:
    """The classes (labels or regions) scored, when there are several: each gets a column."""
    for row in result["rows"]:
        names = list((row.get("test") or {}).get("per_class", {}))
        if names:
            return names if len(names) > 1 else []
    return []


def metric_columns(seeds: int, classes: list[str] | None = None) -> list[str]:
    """Mean Dice and IoU over classes (and seeds), their std over seeds, each class's Dice."""
    columns = ["Dice (%)", "IoU (%)"]
    if seeds > 1:
        columns += ["Dice std over seeds (%)", "IoU std over seeds (%)"]
    return columns + [f"Dice {name} (%)" for name in classes or []]


def table_cells(result: dict[str, Any]) -> list[list[str]]:
    """One list of cells per row: labels, metrics (empty when skipped), status."""
    seeds = len(result["seeds"])
    classes = class_names(result)
    lines = []
    for row in result["rows"]:
        cells = [row["labels"][c] for c in result["label_columns"]]
        scores = row.get("test") or {}
        values = [scores.get("Dice"), scores.get("IoU")]
        if seeds > 1:
            values += [scores.get("Dice_std"), scores.get("IoU_std")]
        values += [scores.get("per_class", {}).get(name, {}).get("Dice") for name in classes]
        cells += [_percent(v) for v in values]
        cells.append("measured" if row["status"] != "skipped" else f"skipped: {row['reason']}")
        lines.append(cells)
    return lines


def markdown(result: dict[str, Any]) -> str:
    seeds = len(result["seeds"])
    header = [*result["label_columns"], *metric_columns(seeds, class_names(result)), "status"]
    lines = [f"### {result['title']}", "",
             f"{result['dataset']}, preset {result['preset']}, fold {result['fold']}, "
             f"{result['steps']} steps, training seed {result['seed']}, test split "
             f"({result['num_test_cases']} cases), noise seed(s) "
             f"{', '.join(map(str, result['seeds']))}, checkpoint {result['checkpoint']}.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(result)]
    floor = result["all_foreground_reference"]
    if floor is not None:
        lines += ["", "Reference: marking every pixel foreground scores Dice "
                  f"{_percent(floor['Dice'])}"
                  f" and IoU {_percent(floor['IoU'])} on this test split."]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def csv_text(result: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    seeds = len(result["seeds"])
    writer.writerow([*result["label_columns"], *metric_columns(seeds, class_names(result)),
                     "status", "trainer",
                     "steps", "run_folder"])
    for row, cells in zip(result["rows"], table_cells(result), strict=True):
        writer.writerow([*cells, row["trainer"], result["steps"], row["run_folder"]])
    return buffer.getvalue()


def plot_validation(path: Path, result: dict[str, Any]) -> None:
    """Validation Dice (EMA weights) against training steps, one line per measured row."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for row in result["rows"]:
        history = row.get("validation")
        if history and history["step"]:
            label = ", ".join(f"{k} {v}" for k, v in row["labels"].items())
            axis.plot(history["step"], [100 * d for d in history["dice"]], "o-", label=label)
    axis.set_xlabel("training step")
    axis.set_ylabel("validation Dice (%)")
    axis.set_title(f"{result['title']}\n{result['dataset']}, preset {result['preset']}",
                   fontsize=9)
    if axis.lines:
        axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    plt.close(figure)


def write_report(folder: Path, result: dict[str, Any]) -> dict[str, Path]:
    """``TABLE.md``, ``TABLE.csv``, ``TABLE.json`` and ``TABLE_validation_dice.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    name = result["table"]
    paths = {"markdown": folder / f"{name}.md", "csv": folder / f"{name}.csv",
             "json": folder / f"{name}.json", "plot": folder / f"{name}_validation_dice.png"}
    for key, text in (("markdown", markdown(result)), ("csv", csv_text(result))):
        with atomic_path(paths[key]) as temporary:
            temporary.write_text(text)
    write_json(paths["json"], {**result, "files": {k: str(v) for k, v in paths.items()}})
    plot_validation(paths["plot"], result)
    return paths
