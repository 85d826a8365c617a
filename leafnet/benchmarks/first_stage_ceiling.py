"""``leafnet_benchmark first-stage-ceiling``: how well the shipped mask autoencoder, untouched,
carries the masks of every real dataset at hand and of synthetic sets it was not trained on.

For each set, up to ``cases`` masks (evenly spaced over the sorted files) go through the plan a
dataset gets by default, one stage at the preset's size, and back to their original size
(planning/ceiling.py's measure, each class on its own): the mean and 5th percentile Dice per
class, beside the resizing alone (what the size costs without any autoencoder), and, at the
plan's size, the Dice of all classes coded together in one latent as the label scheme codes them
for training (where several classes share the latent). Real masks are read as
distributed: the first channel, foreground above half the file's range. The synthetic sets are
the demo (one label, and nested lesion/core regions) and the fundus set (nested disc/cup), drawn
with seeds the shipped autoencoder never saw (it was trained on mask_shapes.py's shapes and
Kvasir-SEG's training masks only, see its shipped.json).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from leafnet.dataset_conversion.demo import synthesize_case
from leafnet.dataset_conversion.fundus import synthesize_fundus
from leafnet.errors import LeafnetError
from leafnet.imageio.mask_rule import read_binary_mask
from leafnet.models.presets import get_preset
from leafnet.models.shipped_autoencoder import (
    load_shipped_autoencoder,
    reconstruction_dice,
    shipped_record,
)
from leafnet.planning.ceiling import Candidate, measure
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.resampling import resize_label
from leafnet.utilities.picks import evenly_spaced

BINARY = LabelScheme.for_dataset({"background": 0, "foreground": 1})
NESTED = {"background": 0, "outer": 1, "inner": 2}
REGIONS = {"outer": [1, 2], "inner": [2]}
REAL_SETS = {
    "kvasir-seg test (not trained on)": ("kvasir-seg/test/masks", "*.jpg"),
    "cvc-clinicdb": ("cvc-clinicdb/masks", "*.png"),
    "chest-xray-lungs": ("chest-xray-lungs", "*@.png"),
    "drive vessels (1st observer)": ("drive/test/1st_manual", "*.gif"),
}
SYNTHETIC_SEED = 7


def synthetic_sets(cases: int) -> dict[str, tuple[LabelScheme, Callable[[int], np.ndarray]]]:
    nested = LabelScheme.for_dataset(NESTED, REGIONS)
    return {
        "demo (synthetic)": (BINARY, lambda i: synthesize_case(SYNTHETIC_SEED, i, 256)[1]),
        "nested demo (synthetic)": (nested, lambda i: synthesize_case(SYNTHETIC_SEED, i, 256,
                                                                      num_labels=2)[1]),
        "fundus disc/cup (synthetic, 1024 px)": (
            nested, lambda i: synthesize_fundus(SYNTHETIC_SEED, i, 1024)[1]),
    }


def _row(name: str, scheme: LabelScheme, labels: list[np.ndarray], autoencoder: Any,
         size: tuple[int, int]) -> dict[str, Any]:
    plan = Candidate(f"one stage {size[0]}x{size[1]}", size, None, 1.0)
    per_case = [measure(autoencoder, scheme, [label], plan) for label in
                tqdm(labels, desc=name, leave=False)]
    resized = measure(None, scheme, labels, plan)
    together = reconstruction_dice(autoencoder, scheme, np.stack(
        [scheme.encode(resize_label(label, size)) for label in labels])).mean(axis=0)
    row = {"set": name, "cases": len(labels), "classes": {}}
    for item, coded in zip(scheme.classes, together, strict=True):
        values = np.array([case[item.name] for case in per_case])
        row["classes"][item.name] = {"mean": float(values.mean()),
                                     "p05": float(np.percentile(values, 5)),
                                     "resize_only": resized[item.name],
                                     "coded_together_at_plan_size": float(coded)}
    return row


def benchmark_first_stage_ceiling(data: Path, preset: str = "small",
                                  cases: int = 100) -> dict[str, Any]:
    """The table's rows (real sets found under ``data``, then the synthetic ones)."""
    autoencoder = load_shipped_autoencoder(preset)
    if autoencoder is None:
        raise LeafnetError(f"the '{preset}' preset ships no mask autoencoder")
    size = get_preset(preset).target_size
    rows, skipped = [], {}
    for name, (relative, pattern) in REAL_SETS.items():
        paths = sorted((data / relative).glob(pattern))
        if not paths:
            skipped[name] = f"no {pattern} in {data / relative}"
            continue
        labels = [read_binary_mask(path) for path in evenly_spaced(paths, cases)]
        rows.append(_row(name, BINARY, labels, autoencoder, size))
    for name, (scheme, make) in synthetic_sets(cases).items():
        count = min(cases, 40)
        rows.append(_row(name, scheme, [make(index) for index in range(count)], autoencoder,
                         size))
    return {"preset": preset, "plan_size": list(size), "shipped": {
        key: value for key, value in shipped_record(preset).items() if key != "history"},
        "rows": rows, "skipped": skipped}


def ceiling_table(report: dict[str, Any]) -> str:
    size = "x".join(map(str, report["plan_size"]))
    lines = [f"# The shipped '{report['preset']}' mask autoencoder, untouched, at {size} and "
             "back to the original size", "",
             "| set | cases | class | ceiling Dice (mean) | 5th percentile | resizing alone | "
             f"all classes in one latent, at {size} |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        for name, values in row["classes"].items():
            lines.append(f"| {row['set']} | {row['cases']} | {name} | {values['mean']:.3f} | "
                         f"{values['p05']:.3f} | {values['resize_only']:.3f} | "
                         f"{values['coded_together_at_plan_size']:.3f} |")
    for name, reason in report["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} | | | | | |")
    return "\n".join(lines) + "\n"
