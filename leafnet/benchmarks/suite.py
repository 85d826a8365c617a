"""``leafnet_benchmark suite``: versus-nnunet over every real dataset at hand, as distributed.

Each dataset of ``SUITE`` found under the data folder (``../shared/data`` by default) is
converted as it was distributed (the converter and options in its entry), planned with the
defaults (small preset), and benchmarked by versus_nnunet.py: leafnet, the plain U-Net in
leafnet's loop and nnU-Net v2 (at leafnet's input size and at its own plans) for the same
minutes each, every row scored at the original size by leafnet's evaluation. Everything lives in
one suite folder (its own raw and preprocessed folders, one versus-nnunet folder per dataset),
so nothing of the user's datasets is touched, and every piece resumes: running the command again
continues where it stopped. The summary table has one row per dataset and method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leafnet.atomic import write_text
from leafnet.benchmarks.report import write_report
from leafnet.benchmarks.scratch_environment import environment
from leafnet.benchmarks.versus_nnunet import (
    ROWS,
    benchmark_versus_nnunet,
    markdown_table,
    verdict,
)
from leafnet.dataset_conversion import convert_folder, convert_kvasir_seg
from leafnet.errors import LeafnetError
from leafnet.paths import results_root
from leafnet.planning.plan_and_preprocess import plan_and_preprocess
from leafnet.raw_format import find_dataset
from leafnet.utilities.machine import machine

DEFAULT_DATA = Path("../shared/data")
SUITE_PRESET = "small"


@dataclass(frozen=True)
class SuiteDataset:
    """One dataset of the suite: its folder under the data folder, the id it is converted to,
    how (a function of the source folder and the id), and that conversion as a command."""

    folder: str
    dataset_id: int
    convert: Callable[[Path, int], Any]
    command: str


def _kvasir(source: Path, dataset_id: int) -> Any:
    return convert_kvasir_seg(source, dataset_id=dataset_id)


def _cvc(source: Path, dataset_id: int) -> Any:
    return convert_folder(source / "images", source / "masks", dataset_id, "CVCClinicDB",
                          labels=("background", "polyp"), threshold=128)


def _chest(source: Path, dataset_id: int) -> Any:
    return convert_folder(source, source, dataset_id, "ChestXrayLungs",
                          labels=("background", "lungs"), mask_suffix="@", threshold=128)


SUITE = (
    SuiteDataset("kvasir-seg", 5, _kvasir, "leafnet_convert kvasir-seg SRC -d 5"),
    SuiteDataset("cvc-clinicdb", 2, _cvc,
                 "leafnet_convert folder --images SRC/images --masks SRC/masks --name "
                 "CVCClinicDB --labels background,polyp --threshold 128 -d 2"),
    SuiteDataset("chest-xray-lungs", 6, _chest,
                 "leafnet_convert folder --images SRC --masks SRC --mask-suffix @ --name "
                 "ChestXrayLungs --labels background,lungs --threshold 128 -d 6"),
)


def suite_folder(minutes: float) -> Path:
    return results_root() / "benchmarks" / f"suite_{minutes:g}min"


def prepare(entry: SuiteDataset, source: Path) -> None:
    """Convert (unless already converted) and plan the dataset in the suite's folders."""
    try:
        find_dataset(entry.dataset_id)
    except LeafnetError:
        entry.convert(source, entry.dataset_id)
    plan_and_preprocess(entry.dataset_id, preset=SUITE_PRESET)


def run_suite(minutes: float, data: Path = DEFAULT_DATA, datasets: tuple[str, ...] | None = None,
              rows: tuple[str, ...] = ROWS, folder: Path | None = None,
              **versus_options: Any) -> dict[str, Any]:
    """Every chosen dataset of ``SUITE`` found under ``data``, converted, planned and
    benchmarked for ``minutes`` per row; the per-dataset reports and what was skipped."""
    known = {entry.folder: entry for entry in SUITE}
    unknown = sorted(set(datasets or ()) - set(known))
    if unknown:
        raise LeafnetError(f"--datasets: unknown {', '.join(unknown)}; the suite has "
                           f"{', '.join(known)}")
    folder = folder or suite_folder(minutes)
    reports, skipped = [], {}
    for entry in SUITE:
        if datasets and entry.folder not in datasets:
            continue
        source = data / entry.folder
        if not source.is_dir():
            skipped[entry.folder] = f"{source} not found"
            continue
        with environment(LEAFNET_RAW=str(folder / "raw"),
                         LEAFNET_PREPROCESSED=str(folder / "preprocessed")):
            prepare(entry, source)
            report = benchmark_versus_nnunet(entry.dataset_id, minutes, rows=rows,
                                             folder=folder / entry.folder, **versus_options)
        report["conversion"] = entry.command.replace("SRC", str(source))
        path = write_report("versus_nnunet", report, folder / entry.folder / "versus_nnunet.json")
        write_text(path.with_suffix(".md"), markdown_table({**report, "machine": machine()}))
        reports.append(report)
    if not reports:
        raise LeafnetError(f"none of the suite's datasets ({', '.join(known)}) was found under "
                           f"{data}; pass --data with the folder that holds them")
    return {"minutes": minutes, "data": str(data), "reports": reports, "skipped": skipped}


def summary_table(suite: dict[str, Any]) -> str:
    """One row per dataset and method: Dice, IoU, HD95, samples seen, wall-clock s/step,
    s/image, and whether leafnet leads the dataset."""
    lines = [f"# leafnet suite: {suite['minutes']:g} minutes of training per row", "",
             "| dataset | method | input | test Dice | IoU | HD95 (px) | samples seen | "
             "s / step (wall) | s / image |", "|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for report in suite["reports"]:
        for row in report["rows"]:
            scores = row["scores"]
            lines.append(
                f"| {report['dataset']} | {row['method']} | {row['input']} | "
                f"{scores['Dice']:.3f} | {scores['IoU']:.3f} | "
                f"{scores.get('HD95', float('nan')):.1f} | {row['samples_seen']} | "
                f"{row['seconds_per_step']:.2f} | {row['seconds_per_image']:.3f} |")
        decided = verdict(report)
        failed = {name: reason for name, reason in report.get("skipped", {}).items()
                  if reason.startswith("failed:")}
        if decided is not None:
            leafnet, best = decided
            lead = leafnet["scores"]["Dice"] - best["scores"]["Dice"]
            verdicts.append(f"- {report['dataset']}: leafnet ({leafnet['method']}) "
                            f"{'leads' if lead > 0 else 'does not lead'} by {lead:+.3f} "
                            f"against {best['method']}"
                            + (f" (without {', '.join(failed)}, which failed)" if failed else ""))
        verdicts += [f"- {report['dataset']}, {name}: {reason}"
                     for name, reason in failed.items()]
    for name, reason in suite["skipped"].items():
        verdicts.append(f"- {name}: skipped ({reason})")
    return "\n".join(lines + [""] + verdicts) + "\n"
