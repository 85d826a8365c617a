"""How a dataset's masks become labels: one rule per dataset, decided from all of its masks.

Masks come as 0/1 or 0/255 PNGs, JPEGs with compression noise, palette PNGs, RGB files with
equal channels, colour masks, and more. A rule chosen per file (or guessed from the first one)
silently turns a {0, 2} mask into background, or one file's stray value into a different
threshold. :func:`survey_masks` reads every mask once; :func:`decide_mask_rule` picks one rule
for all of them, says it in one line ("values {0,255} in 200 files -> foreground = value >=
128"), and refuses anything ambiguous with the files named and the flag that resolves it.
:meth:`MaskRule.to_label` then checks each case: a mask whose foreground would vanish or change
is an error, not a pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leafnet.errors import LeafnetError
from leafnet.imageio.endings import LOSSY_ENDINGS, file_ending
from leafnet.imageio.properties import ImageProperties
from leafnet.imageio.read_write import read_array, write_label
from leafnet.utilities.parallel import parallel_map

MAX_LISTED = 5
# JPEG masks: channels of a gray mask stored as RGB differ by compression noise only.
LOSSY_CHANNEL_TOLERANCE = 24
# A mask with more than two values is read as binary only when almost every pixel lies near
# its lowest or highest value (compression noise, anti-aliased edges).
NEAR_EXTREMES_FRACTION = 0.98


@dataclass(frozen=True)
class MaskFacts:
    """What one mask file holds: its mode, channels and value counts (of the channel read)."""

    path: Path
    mode: str | None
    channels: int
    colours: bool
    values: dict[int, int]

    @property
    def lossy(self) -> bool:
        return file_ending(self.path) in LOSSY_ENDINGS


def _colour_channels(array: np.ndarray, lossy: bool) -> bool:
    """Whether the colour channels of ``array`` differ (beyond JPEG noise for lossy files)."""
    if array.shape[0] == 1:
        return False
    spread = np.abs(array.astype(np.int32) - array[:1].astype(np.int32)).max()
    return bool(spread > (LOSSY_CHANNEL_TOLERANCE if lossy else 0))


def read_mask_channel(path: Path,
                      channel: int | None) -> tuple[np.ndarray, ImageProperties, bool]:
    """The mask's ``(H, W)`` values: the chosen ``channel``, else the first colour channel
    (alpha dropped). Also returns the file's properties and whether its channels differ."""
    array, properties = read_array(path, palette_as_index=True)
    if channel is not None:
        if not 0 <= channel < array.shape[0]:
            raise LeafnetError(f"{path}: has {array.shape[0]} channel(s); --mask-channel "
                               f"{channel} does not exist")
        return array[channel], properties, False
    colour = array[:-1] if properties.has_alpha else array
    return colour[0], properties, _colour_channels(colour, file_ending(path) in LOSSY_ENDINGS)


def mask_facts(path: Path, mask: np.ndarray, properties: ImageProperties,
               colours: bool) -> MaskFacts:
    """The :class:`MaskFacts` of a mask read by :func:`read_mask_channel`."""
    if not np.issubdtype(mask.dtype, np.integer) and not np.array_equal(mask, np.round(mask)):
        raise LeafnetError(f"{path}: mask values must be integers, found fractions")
    return MaskFacts(path, properties.mode, properties.channels, colours, _value_counts(mask))


def _value_counts(mask: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(mask, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


class SurveyTask:
    """Picklable worker: one mask path -> its :class:`MaskFacts`."""

    def __init__(self, channel: int | None) -> None:
        self.channel = channel

    def __call__(self, path: Path) -> MaskFacts:
        return mask_facts(path, *read_mask_channel(path, self.channel))


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:MAX_LISTED])
    return shown + (f" ... and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def _values_text(values: Sequence[int]) -> str:
    values = sorted(values)
    if len(values) > 8:
        return f"{len(values)} values from {values[0]} to {values[-1]}"
    return "{" + ",".join(str(v) for v in values) + "}"


@dataclass(frozen=True)
class MaskRule:
    """How a source mask becomes a label (from one channel, see :func:`read_mask_channel`).

    - ``label_map`` maps each source value to a label; a value it does not name is an error.
    - ``threshold``: foreground (1) where the value is ``>= threshold`` (``< threshold`` when
      ``foreground_below``).
    - ``bands``: ``((upper, label), ...)`` ascending: label where the value is below ``upper``
      and not below the previous band's (a grey-level coding such as REFUGE's 0 / 128 / 255).
    - none of these: the values are the labels.

    ``statement`` is the rule in words, as printed. A threshold that makes a case's object
    vanish (or fill the image) is an error, see :func:`loses_object`.
    """

    threshold: float | None = None
    foreground_below: bool = False
    label_map: tuple[tuple[int, int], ...] | None = None
    channel: int | None = None
    statement: str = ""
    bands: tuple[tuple[float, int], ...] | None = None

    def to_label(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if self.bands is not None:
            label = np.zeros(mask.shape, dtype=np.uint8)
            lower = -np.inf
            for upper, value in self.bands:
                label[(mask >= lower) & (mask < upper)] = value
                lower = upper
            return label
        if self.label_map is not None:
            label = np.zeros(mask.shape, dtype=np.uint8)
            known = np.zeros(mask.shape, dtype=bool)
            for source, target in self.label_map:
                hit = mask == source
                label[hit] = target
                known |= hit
            if not known.all():
                unknown = np.unique(mask[~known])[:8].tolist()
                raise LeafnetError(
                    f"{path}: values {unknown} are not in the label map; add them "
                    "(--label-map 'SRC:DST,...') or use --threshold"
                )
            return label
        if self.threshold is None:
            return mask
        foreground = mask < self.threshold if self.foreground_below else mask >= self.threshold
        counts = _value_counts(mask)
        if loses_object(counts, int(foreground.sum()), file_ending(path) in LOSSY_ENDINGS):
            what = ("its object vanished: the rule marks no pixel as foreground"
                    if not foreground.any() else "the rule marks every pixel as foreground")
            raise LeafnetError(
                f"{path}: {what} although the mask holds values {_values_text(list(counts))} "
                f"(rule: {self.statement or 'threshold'}). Give the rule that fits: --threshold "
                "T, --label-map SRC:DST,... or --mask-channel N")
        return foreground.astype(np.uint8)

    def write(self, source: Path, destination: Path) -> None:
        mask, properties, colours = read_mask_channel(source, self.channel)
        if colours:
            raise LeafnetError(f"{source}: a colour mask (its channels differ); choose the channel "
                               "that holds the labels with --mask-channel 0|1|2")
        write_label(destination, self.to_label(mask, source), properties)


def loses_object(values: dict[int, int], foreground: int, lossy: bool) -> bool:
    """Whether a rule marking ``foreground`` pixels loses the object of a mask with these value
    counts: the mask holds two clearly different values (beyond JPEG noise), yet the label would
    be empty or full."""
    if max(values) - min(values) <= (LOSSY_CHANNEL_TOLERANCE if lossy else 0):
        return False
    return foreground in (0, sum(values.values()))


def survey_masks(paths: Sequence[Path], channel: int | None, num_processes: int | None,
                 show_progress: bool) -> list[MaskFacts]:
    """Read every mask once (in parallel) and record its values."""
    return parallel_map(SurveyTask(channel), paths, num_processes, "reading masks",
                        show_progress)


def _refuse_colours(facts: Sequence[MaskFacts]) -> None:
    coloured = [f.path for f in facts if f.colours]
    if coloured:
        raise LeafnetError(
            f"{len(coloured)} masks are colour images whose channels differ "
            f"({_listing(coloured)}); "
            "leafnet will not guess which colour is which label. Choose the channel that holds "
            "the labels with --mask-channel 0|1|2 (then --threshold or --label-map as needed), "
            "or save the masks as single-channel label images")


def decide_mask_rule(facts: Sequence[MaskFacts], num_labels: int,
                     threshold: float | None = None,
                     label_map: tuple[tuple[int, int], ...] | None = None,
                     channel: int | None = None) -> MaskRule:
    """One rule for all masks of a dataset (see the module docstring); ambiguous masks are a
    :class:`LeafnetError` naming the files and the flags that resolve them."""
    if not facts:
        raise LeafnetError("no masks to read")
    _refuse_colours(facts)
    totals: Counter[int] = Counter()
    files_with: dict[int, list[Path]] = {}
    for fact in facts:
        totals.update(fact.values)
        for value in fact.values:
            files_with.setdefault(value, []).append(fact.path)
    values = sorted(totals)
    kinds = sorted({"palette PNG" if f.mode == "P" else
                    ("JPEG" if f.lossy else f"{f.channels}-channel") for f in facts})
    seen = f"masks: values {_values_text(values)} in {len(facts)} files ({', '.join(kinds)})"
    if channel is not None:
        seen += f", channel {channel}"
    if label_map is not None:
        mapped = {source for source, _ in label_map}
        unmapped = [v for v in values if v not in mapped]
        if unmapped:
            files = sorted({p for v in unmapped for p in files_with[v]})
            raise LeafnetError(
                f"{seen}: values {_values_text(unmapped)} are not in --label-map (in "
                f"{_listing(files)}); add them to the map")
        text = ",".join(f"{s}:{d}" for s, d in label_map)
        return MaskRule(label_map=label_map, channel=channel,
                        statement=f"{seen} -> labels by the map {text}")
    if threshold is not None:
        _refuse_broken(facts, threshold, seen, "--threshold")
        return MaskRule(threshold=threshold, channel=channel,
                        statement=f"{seen} -> foreground = value >= {threshold:g} (--threshold)")
    if set(values) <= set(range(num_labels)):
        return MaskRule(channel=channel, statement=f"{seen} -> the values are the labels")
    if num_labels == 2:
        rule = _binary_rule(values, totals, seen, channel, _stray_files(facts))
        if rule is not None:
            _refuse_broken(facts, float(rule.threshold), seen, "the masks' encodings")
            return rule
    rare = sorted(values, key=lambda v: len(files_with[v]))[0]
    raise LeafnetError(
        f"{seen} do not match the {num_labels} labels 0..{num_labels - 1} and are not a clear "
        f"binary mask (value {rare} occurs in {len(files_with[rare])} files: "
        f"{_listing(files_with[rare])}). Say how to read them: --label-map SRC:DST,... (e.g. "
        f"{','.join(f'{v}:{min(i, num_labels - 1)}' for i, v in enumerate(values[:4]))}), "
        "--threshold T for a binary mask, or --labels with one name per label")


def _refuse_broken(facts: Sequence[MaskFacts], threshold: float, seen: str, cause: str) -> None:
    """Refuse a threshold under which some mask's object vanishes or fills the image (e.g. 0/1
    masks among 0/255 ones), naming those files."""
    broken = [fact for fact in facts if loses_object(
        fact.values, sum(n for value, n in fact.values.items() if value >= threshold), fact.lossy)]
    if broken:
        example = broken[0]
        mapping = ",".join(f"{v}:{int(v > 0)}" for v in sorted({v for f in facts for v in f.values}
                                                              )[:6])
        raise LeafnetError(
            f"{seen}: foreground = value >= {threshold:g} would leave {len(broken)} masks with "
            f"no foreground or nothing else ({_listing([f.path for f in broken])}; e.g. "
            f"{example.path.name} holds {_values_text(list(example.values))}): the files encode "
            f"labels differently ({cause}). Say how to read them: --label-map {mapping} (each "
            "value to its label), or --threshold T that fits every file")


def _stray_files(facts: Sequence[MaskFacts]) -> list[Path]:
    """Lossless masks holding values that most lossless masks lack (a stray value in one file,
    not the anti-aliased edges that every file has)."""
    lossless = [f for f in facts if not f.lossy]
    counts = Counter(v for f in lossless for v in f.values)
    common = {v for v, n in counts.items() if n * 2 >= len(lossless)}
    return [f.path for f in lossless if set(f.values) - common]


def _binary_rule(values: list[int], totals: Counter[int], seen: str,
                 channel: int | None, stray: list[Path]) -> MaskRule | None:
    """Two values (0/255, 0/2, ...), or two clusters of values at the extremes (JPEG noise,
    anti-aliasing in every file): threshold half-way. None when the values fit neither, or a
    few lossless files hold values the others lack."""
    low, high = values[0], values[-1]
    cut = (low + high + 1) // 2
    if len(values) == 2:
        return MaskRule(threshold=cut, channel=channel,
                        statement=f"{seen} -> foreground = value >= {cut}")
    band = (high - low) / 8
    near = sum(count for value, count in totals.items()
               if value <= low + band or value >= high - band)
    fraction = near / sum(totals.values())
    if fraction >= NEAR_EXTREMES_FRACTION and high - low >= 2 and not stray:
        return MaskRule(threshold=cut, channel=channel, statement=(
            f"{seen}, {fraction:.1%} of pixels near {low} or {high} (compression noise or "
            f"anti-aliased edges) -> foreground = value >= {cut}"))
    return None
