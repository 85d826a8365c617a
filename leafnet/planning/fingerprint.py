"""The dataset fingerprint: sizes, channels, intensity statistics, label frequencies, the
size of each label's objects (the bounding box of its largest connected piece in each case, as a
fraction of the image's sides: what planning needs to know whether resizing keeps it) and the
same for the foreground as a whole, with how often it is one structure (whether a crop around it
can hold everything: the two-stage plans).

Computed over imagesTr. For 8-bit images every statistic, percentiles included, is exact (from
per-case histograms). For other types, means and standard deviations are exact (running sums)
and percentiles come from up to ``SAMPLES_PER_CASE`` pixels per case and channel (all pixels of
a smaller image), drawn with a generator seeded by the case id, so the fingerprint is
reproducible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from leafnet.preprocessing.roi_crop import largest_piece
from leafnet.raw_format import CaseFiles, DatasetDescription, read_case

FINGERPRINT_VERSION = 3
SINGLE_STRUCTURE_SHARE = 0.9
SAMPLES_PER_CASE = 10_000
PERCENTILES = {"percentile_00_5": 0.5, "percentile_99_5": 99.5}


@dataclass
class ChannelSummary:
    """One channel of one case (or of its foreground): sums, extremes and a distribution."""

    count: int
    total: float
    squares: float
    minimum: float
    maximum: float
    samples: np.ndarray
    histogram: np.ndarray | None = None


@dataclass
class CaseStatistics:
    """What one case contributes to the fingerprint (computed in a worker process)."""

    case_id: str
    shape: tuple[int, int]
    dtype: str
    overall: list[ChannelSummary]
    foreground: list[ChannelSummary]
    label_counts: list[int]
    object_extents: list[tuple[int, int] | None]
    foreground_extent: tuple[int, int] | None = None
    foreground_largest_share: float | None = None


def summarise_channel(values: np.ndarray, rng: np.random.Generator) -> ChannelSummary:
    """Sums, extremes, a sample and (for uint8) the exact histogram of ``values``."""
    if values.size > SAMPLES_PER_CASE:
        samples = values[rng.integers(0, values.size, SAMPLES_PER_CASE)].astype(np.float64)
    else:
        samples = values.astype(np.float64)
    if values.dtype == np.uint8:
        histogram = np.bincount(values, minlength=256).astype(np.int64)
        levels = np.arange(256, dtype=np.float64)
        present = np.flatnonzero(histogram)
        return ChannelSummary(
            count=int(values.size),
            total=float(histogram @ levels),
            squares=float(histogram @ levels**2),
            minimum=float(present[0]) if present.size else float("inf"),
            maximum=float(present[-1]) if present.size else float("-inf"),
            samples=samples,
            histogram=histogram,
        )
    as_float = values.astype(np.float64)
    return ChannelSummary(
        count=int(values.size),
        total=float(as_float.sum()),
        squares=float((as_float**2).sum()),
        minimum=float(values.min()) if values.size else float("inf"),
        maximum=float(values.max()) if values.size else float("-inf"),
        samples=samples,
    )


def largest_object_extent(mask: np.ndarray) -> tuple[int, int] | None:
    """Height and width of the bounding box of the largest 8-connected piece of ``mask``."""
    found = largest_piece(mask)
    return None if found is None else (found[0].height, found[0].width)


def _case_seed(case_id: str) -> int:
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "little")


class CaseStatisticsTask:
    """Picklable worker computing :class:`CaseStatistics` for one case."""

    def __init__(self, num_labels: int) -> None:
        self.num_labels = num_labels

    def __call__(self, case: CaseFiles) -> CaseStatistics:
        image, label, _ = read_case(case)
        assert label is not None, "the integrity check guarantees a label in imagesTr"
        rng = np.random.default_rng(_case_seed(case.case_id))
        foreground = label.ravel() > 0
        channels = image.reshape(image.shape[0], -1)
        piece = largest_piece(label > 0)
        return CaseStatistics(
            case_id=case.case_id,
            shape=(int(image.shape[1]), int(image.shape[2])),
            dtype=str(image.dtype),
            overall=[summarise_channel(channel, rng) for channel in channels],
            foreground=[summarise_channel(channel[foreground], rng) for channel in channels],
            label_counts=np.bincount(label.ravel(), minlength=self.num_labels).tolist(),
            object_extents=[largest_object_extent(label == value)
                            for value in range(self.num_labels)],
            foreground_extent=None if piece is None else (piece[0].height, piece[0].width),
            foreground_largest_share=None if piece is None else piece[1],
        )


def histogram_percentile(histogram: np.ndarray, percentile: float) -> float:
    """``np.percentile`` (linear interpolation) of the values a histogram of 0..255 counts."""
    cumulative = np.cumsum(histogram)
    position = percentile / 100 * (cumulative[-1] - 1)
    below = int(np.floor(position))
    value_below = np.searchsorted(cumulative, below, side="right")
    value_above = np.searchsorted(cumulative, min(below + 1, cumulative[-1] - 1), side="right")
    return float(value_below + (position - below) * (value_above - value_below))


def combine_channel(parts: list[ChannelSummary]) -> dict[str, float | None]:
    """Mean, std, extremes and percentiles of a channel over all cases."""
    count = sum(p.count for p in parts)
    if count == 0:
        return {key: None for key in ("mean", "std", "min", "max", *PERCENTILES)}
    mean = sum(p.total for p in parts) / count
    variance = max(sum(p.squares for p in parts) / count - mean**2, 0.0)
    if all(p.histogram is not None for p in parts):
        histogram = np.sum([p.histogram for p in parts], axis=0)
        percentiles = {k: histogram_percentile(histogram, q) for k, q in PERCENTILES.items()}
    else:
        samples = np.concatenate([p.samples for p in parts])
        percentiles = {k: float(np.percentile(samples, q)) for k, q in PERCENTILES.items()}
    return {
        "mean": mean,
        "std": float(np.sqrt(variance)),
        "min": min(p.minimum for p in parts),
        "max": max(p.maximum for p in parts),
        **percentiles,
    }


def _size_distribution(shapes: np.ndarray) -> dict[str, list[float]]:
    return {
        "min": shapes.min(axis=0).tolist(),
        "median": np.median(shapes, axis=0).tolist(),
        "max": shapes.max(axis=0).tolist(),
    }


def _object_size(statistics: list[CaseStatistics], value: int) -> dict[str, list[float]]:
    """Median over the cases holding label ``value`` of its largest piece's bounding box, in
    pixels and as fractions of the image's height and width."""
    found = [(s.object_extents[value], s.shape) for s in statistics
             if s.object_extents[value] is not None]
    if not found:
        return {}
    extents = np.array([extent for extent, _ in found], dtype=np.float64)
    fractions = extents / np.array([shape for _, shape in found], dtype=np.float64)
    return {"object_extent_hw_median": np.median(extents, axis=0).tolist(),
            "object_fraction_hw_median": np.median(fractions, axis=0).tolist()}


def _foreground_structure(statistics: list[CaseStatistics]) -> dict[str, Any]:
    """The foreground's largest piece (every label together) as :func:`_object_size` gives a
    label's, and the fraction of the cases with foreground in which that piece holds at least
    ``SINGLE_STRUCTURE_SHARE`` of the foreground pixels."""
    found = [(s.foreground_extent, s.shape, s.foreground_largest_share) for s in statistics
             if s.foreground_extent is not None]
    if not found:
        return {}
    extents = np.array([extent for extent, _, _ in found], dtype=np.float64)
    fractions = extents / np.array([shape for _, shape, _ in found], dtype=np.float64)
    single = np.mean([share >= SINGLE_STRUCTURE_SHARE for _, _, share in found])
    return {"object_extent_hw_median": np.median(extents, axis=0).tolist(),
            "object_fraction_hw_median": np.median(fractions, axis=0).tolist(),
            "single_structure_case_fraction": float(single)}


def build_fingerprint(
    description: DatasetDescription,
    statistics: list[CaseStatistics],
    num_test_cases: int,
) -> dict[str, Any]:
    """Combine per-case statistics into the JSON-able fingerprint."""
    shapes = np.array([s.shape for s in statistics])
    counts = np.array([s.label_counts for s in statistics])
    total_pixels = int(counts.sum())
    per_case_pixels = counts.sum(axis=1)
    labels = {}
    for name, value in sorted(description.labels.items(), key=lambda item: item[1]):
        present = counts[:, value] > 0
        labels[name] = {
            "value": value,
            "pixel_fraction": float(counts[:, value].sum() / total_pixels),
            "cases_with_label": int(present.sum()),
            "case_fraction": float(present.mean()),
            "mean_fraction_per_case": float((counts[:, value] / per_case_pixels).mean()),
            **_object_size(statistics, value),
        }
    intensities = {
        str(channel): {
            "name": description.channel_names[str(channel)],
            "overall": combine_channel([s.overall[channel] for s in statistics]),
            "foreground": combine_channel([s.foreground[channel] for s in statistics]),
        }
        for channel in range(description.num_channels)
    }
    return {
        "version": FINGERPRINT_VERSION,
        "num_cases": {"training": len(statistics), "test": num_test_cases},
        "image_size_hw": _size_distribution(shapes),
        "num_channels": description.num_channels,
        "channel_names": description.channel_names,
        "dtypes": sorted({s.dtype for s in statistics}),
        "intensity_statistics_per_channel": intensities,
        "labels": labels,
        "foreground_pixel_fraction": float(1 - counts[:, 0].sum() / total_pixels),
        "foreground_structure": _foreground_structure(statistics),
    }
