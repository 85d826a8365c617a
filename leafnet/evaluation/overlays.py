"""Overlay pictures: image with reference (green) and prediction (red) contours, for the worst
and best cases of a summary, because people look before they read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from leafnet.atomic import atomic_path  # noqa: E402
from leafnet.evaluation.summary import Summary  # noqa: E402
from leafnet.imageio import read_image, read_label, strip_ending  # noqa: E402


def _image_for(case_file: Path, images: Path | None, shape: tuple[int, int]) -> np.ndarray:
    if images is not None:
        stem = strip_ending(case_file.name)
        for candidate in sorted(images.glob(f"{stem}*")):
            if strip_ending(candidate.name) in (stem, f"{stem}_0000"):
                image = read_image(candidate)[0]
                image = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
                image = np.moveaxis(image, 0, -1).astype(np.float32)
                return (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    return np.full((*shape, 3), 0.5, dtype=np.float32)


STYLES = ("solid", "dashed", "dotted")


def _case_dice(case: dict[str, Any]) -> float:
    return float(np.mean([m["Dice"] for m in case["metrics"].values()]))


def write_overlays(summary: Summary, folder: Path, images: Path | None = None,
                   count: int = 3) -> list[Path]:
    """PNG overlays of the ``count`` worst and best cases by their Dice (the mean over labels
    or regions), one contour style per label or region; the best are taken among cases with a
    non-empty reference (an empty one predicted empty scores 1 but shows nothing)."""
    ranked = sorted(summary.metric_per_case, key=_case_dice)
    with_reference = [c for c in ranked if any(m["n_ref"] for m in c["metrics"].values())] \
        or ranked
    chosen = ([("worst", c) for c in ranked[:count]]
              + [("best", c) for c in with_reference[::-1][:count]])
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for rank, case in chosen:
        reference_label = read_label(Path(case["reference_file"]))[0]
        predicted_label = read_label(Path(case["prediction_file"]))[0]
        image = _image_for(Path(case["reference_file"]), images, reference_label.shape)
        figure, axis = plt.subplots(figsize=(5, 5 * reference_label.shape[0]
                                             / reference_label.shape[1]))
        axis.imshow(image)
        classes = list(summary.classes.values())
        for item, style in zip(classes, STYLES * 3):
            for label, colour in ((reference_label, "lime"), (predicted_label, "red")):
                mask = np.isin(label, item.values)
                if mask.any() and not mask.all():
                    axis.contour(mask.astype(float), levels=[0.5], colors=colour,
                                 linewidths=1.2, linestyles=style)
        name = strip_ending(Path(case["reference_file"]).name)
        styles = ", ".join(f"{item.name} {style}" for item, style
                           in zip(classes, STYLES * 3)) if len(classes) > 1 else ""
        axis.set_title(f"{rank}: {name}  Dice {_case_dice(case):.3f} (green reference, red "
                       f"prediction{'; ' + styles if styles else ''})", fontsize=8)
        axis.axis("off")
        path = folder / f"{rank}_{name}.png"
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written
