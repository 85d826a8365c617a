"""How a dataset's masks become labels: one rule per dataset, decided from all of its masks.

Masks come as 0/1 or 0/255 PNGs, JPEGs with compression noise, palette PNGs, RGB files with
equal channels, colour masks, and more. A rule chosen per file (or guessed from the first one)
silently turns a {0, 2} mask into background, or one file's stray value into a different
threshold. ``mask_facts.survey_masks`` reads every mask once; :func:`decide_mask_rule` picks
one rule for all of them, says it in one line ("values {0,255} in 200 files -> foreground =
value >= 128"), and refuses anything ambiguous with the files named and the flag that resolves it.
:meth:`MaskRule.to_label` then checks each case: a mask whose foreground would vanish or change
is an error, not a pass, and so is a dataset in which no mask keeps any foreground (an object
drawn only in the alpha channel, an empty ``--mask-channel``). A third value is anti-aliasing only
where it lies on the edge between the two extremes; a region of its own is a label and refused,
and so is a stray value away from every edge (a speck of 7 in a 0/255 file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leafnet.errors import LeafnetError
from leafnet.imageio.endings import LOSSY_ENDINGS, file_ending
from leafnet.imageio.mask_facts import (
    LOSSY_CHANNEL_TOLERANCE,
    NEAR_EXTREME_BAND,
    MaskFacts,
    read_mask_channel,
    value_counts,
)
from leafnet.imageio.read_write import write_label

MAX_LISTED = 5
# A mask with more than two values is read as binary when almost every pixel lies near its
# lowest or highest value (compression noise), or when its in-between pixels, of several
# shades over a range of at least ANTI_ALIASED_RANGE, all lie on edges (anti-aliasing, however
# large a share of a small image or thin object the edges are).
NEAR_EXTREMES_FRACTION = 0.98
ANTI_ALIASED_RANGE = 16
# A file's in-between pixels form regions of their own when more than this share of them (and
# at least REGION_MIN_PIXELS) lie away from every edge.
REGION_FRACTION = 0.05
REGION_MIN_PIXELS = 4


def _shades(values: Sequence[int]) -> list[int]:
    """The values not near the lowest or highest (see NEAR_EXTREME_BAND), in order."""
    low, high = min(values), max(values)
    band = (high - low) * NEAR_EXTREME_BAND
    return sorted(v for v in values if low + band < v < high - band)


def _half_way(values: Sequence[int]) -> int:
    """The threshold half-way between the lowest and highest values (128 for 0/255)."""
    return (min(values) + max(values) + 1) // 2


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
    """How a source mask becomes a label (from one channel, see ``mask_facts.read_mask_channel``).

    - ``label_map`` maps each source value to a label; a value it does not name is an error.
    - ``threshold``: foreground (1) where the value is ``>= threshold`` (``< threshold`` when
      ``foreground_below``).
    - ``bands``: ``((upper, label), ...)`` ascending: label where the value is below ``upper``
      and not below the previous band's (a grey-level coding such as REFUGE's 0 / 128 / 255).
    - none of these: the values are the labels.

    ``statement`` is the rule in words, as printed. A rule that makes a case's object vanish
    (or fill the image) is an error, see :func:`loses_object`.
    """

    threshold: float | None = None
    foreground_below: bool = False
    label_map: tuple[tuple[int, int], ...] | None = None
    channel: int | None = None
    statement: str = ""
    bands: tuple[tuple[float, int], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The rule as dataset.json's ``leafnet_mask_rule`` records it (:meth:`from_json`)."""
        data: dict[str, Any] = {"statement": self.statement}
        if self.threshold is not None:
            data.update(threshold=self.threshold, foreground_below=self.foreground_below)
        if self.label_map is not None:
            data["label_map"] = [list(pair) for pair in self.label_map]
        if self.bands is not None:
            data["bands"] = [list(band) for band in self.bands]
        if self.channel is not None:
            data["channel"] = self.channel
        return data

    @classmethod
    def from_json(cls, data: Any, source: Path | str) -> MaskRule:
        """A rule recorded by :meth:`to_json`; an error names ``source``."""
        try:
            return cls(
                threshold=None if data.get("threshold") is None else float(data["threshold"]),
                foreground_below=bool(data.get("foreground_below", False)),
                label_map=None if data.get("label_map") is None else tuple(
                    (int(a), int(b)) for a, b in data["label_map"]),
                channel=None if data.get("channel") is None else int(data["channel"]),
                statement=str(data.get("statement", "")),
                bands=None if data.get("bands") is None else tuple(
                    (float(a), int(b)) for a, b in data["bands"]))
        except (AttributeError, TypeError, ValueError) as error:
            raise LeafnetError(f"{source}: leafnet_mask_rule is not a mask rule ({error!r}); "
                               "convert the dataset again") from None

    def to_label(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """``mask`` as labels; an error when the mask's object vanishes or fills the image."""
        label = self.map_values(mask, path)
        counts = value_counts(mask)
        if loses_object(counts, value_counts(label), file_ending(path) in LOSSY_ENDINGS):
            what = ("its object vanished: the rule marks no pixel as foreground"
                    if not label.any() else "the rule marks every pixel as foreground")
            raise LeafnetError(
                f"{path}: {what} although the mask holds values {_values_text(list(counts))} "
                f"(rule: {self.statement or 'as given'}). Give the rule that fits: --threshold "
                "T, --label-map SRC:DST,... or --mask-channel N")
        return label

    def map_values(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """The labels of ``mask``'s values by this rule, unchecked (see :meth:`to_label`)."""
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
        return foreground.astype(np.uint8)

    def label_counts(self, values: dict[int, int], path: Path) -> dict[int, int]:
        """The label counts this rule makes of a mask with these value counts."""
        labels = self.map_values(np.array(list(values)), path)
        counts: Counter[int] = Counter()
        for label, count in zip(labels.tolist(), values.values(), strict=True):
            counts[int(label)] += count
        return dict(counts)

    def write(self, source: Path, destination: Path) -> None:
        mask, properties, channels = read_mask_channel(source, self.channel)
        if channels.colours:
            raise LeafnetError(f"{source}: a colour mask (its channels differ); choose the channel "
                               "that holds the labels with --mask-channel 0|1|2")
        write_label(destination, self.to_label(mask, source), properties)


def read_binary_mask(path: Path) -> np.ndarray:
    """A mask file as a 0/1 label ``(H, W)`` without surveying its dataset: the channel
    :func:`~leafnet.imageio.mask_facts.read_mask_channel` reads, foreground from half-way
    between its lowest and highest value (the rule :func:`decide_mask_rule` takes for a
    two-valued dataset). For tools that read mask folders as distributed (the shipped first
    stage's real masks, the ceiling benchmark); conversion decides and checks one rule per
    dataset instead."""
    mask = read_mask_channel(path, None)[0]
    low, high = int(mask.min()), int(mask.max())
    if high == low:
        return np.zeros(mask.shape, np.uint8)
    return (mask >= _half_way([low, high])).astype(np.uint8)


def loses_object(values: dict[int, int], labels: dict[int, int], lossy: bool) -> bool:
    """Whether a rule giving these label counts loses the object of a mask with these value
    counts: the mask holds two clearly different values (beyond JPEG noise), yet the label is
    one value (all background, or all one label)."""
    if max(values) - min(values) <= (LOSSY_CHANNEL_TOLERANCE if lossy else 0):
        return False
    return len([n for n in labels.values() if n]) == 1


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
                     channel: int | None = None,
                     require_foreground: bool = True) -> MaskRule:
    """One rule for all masks of a dataset (see the module docstring); ambiguous masks are a
    :class:`LeafnetError` naming the files and the flags that resolve them, and so is a rule
    under which a mask loses its object or (with ``require_foreground``, as for training
    labels) no mask keeps any foreground."""
    if not facts:
        raise LeafnetError("no masks to read")
    _refuse_colours(facts)
    _refuse_alpha_only(facts)
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
    rule, cause = _choose_rule(facts, num_labels, threshold, label_map, channel, seen,
                               values, totals, files_with)
    _refuse_lost(facts, rule, cause)
    if require_foreground:
        _refuse_all_empty(facts, rule)
    return rule


def _choose_rule(facts: Sequence[MaskFacts], num_labels: int, threshold: float | None,
                 label_map: tuple[tuple[int, int], ...] | None, channel: int | None, seen: str,
                 values: list[int], totals: Counter[int],
                 files_with: dict[int, list[Path]]) -> tuple[MaskRule, str]:
    """The rule given or decided, and where it came from (for messages)."""
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
                        statement=f"{seen} -> labels by the map {text}"), "--label-map"
    if threshold is not None:
        return MaskRule(threshold=threshold, channel=channel, statement=(
            f"{seen} -> foreground = value >= {threshold:g} (--threshold)")), "--threshold"
    if set(values) <= set(range(num_labels)):
        return MaskRule(channel=channel,
                        statement=f"{seen} -> the values are the labels"), "the values"
    if num_labels == 2:
        _refuse_regions(facts, values, seen)
        _refuse_strays(facts, values, seen)
        rule = _binary_rule(values, totals, seen, channel)
        if rule is not None:
            return rule, "the masks' encodings"
    rare = sorted(values, key=lambda v: len(files_with[v]))[0]
    raise LeafnetError(
        f"{seen} do not match the {num_labels} labels 0..{num_labels - 1} and are not a clear "
        f"binary mask (value {rare} occurs in {len(files_with[rare])} files: "
        f"{_listing(files_with[rare])}). Say how to read them: --label-map SRC:DST,... (e.g. "
        f"{','.join(f'{v}:{min(i, num_labels - 1)}' for i, v in enumerate(values[:4]))}), "
        "--threshold T for a binary mask, or --labels with one name per label")


def _refuse_alpha_only(facts: Sequence[MaskFacts]) -> None:
    """Masks whose object is drawn only in alpha would be read as empty colour channels."""
    hidden = [f for f in facts if f.alpha_only]
    if hidden:
        alpha = hidden[0].channels - 1
        raise LeafnetError(
            f"{len(hidden)} of {len(facts)} masks hold their object only in the alpha channel "
            f"(their colour channels are one value; {_listing([f.path for f in hidden])}), and "
            f"leafnet reads the colour channels, which would give empty labels. Read the alpha "
            f"channel with --mask-channel {alpha} (channel {alpha} of {hidden[0].path.name}), "
            "or save the masks with the object in their colour channels")


def _refuse_regions(facts: Sequence[MaskFacts], values: list[int], seen: str) -> None:
    """Values between the extremes that form regions of their own (REFUGE's 128 rim between
    0 and 255) are a third label, not anti-aliased edges: refuse them, naming the files."""
    regional = [f for f in facts if f.middle_off_edges >= max(REGION_MIN_PIXELS,
                                                              REGION_FRACTION * f.middle)]
    if not regional:
        return
    example = regional[0]
    low, high = values[0], values[-1]
    cut = _half_way(values)
    mapping = ",".join(f"{v}:{int(v >= cut)}" for v in [low, *_shades(values)[:3], high])
    raise LeafnetError(
        f"{seen}: values between {low} and {high} form regions of their own in "
        f"{len(regional)} files ({_listing([f.path for f in regional])}; e.g. "
        f"{example.path.name}: {example.middle_off_edges} of its {example.middle} in-between "
        f"pixels lie away from any edge, or, in a JPEG, inside a band of them at least three "
        f"pixels wide), so they are not anti-aliased edges or compression noise but a third "
        f"label. Say how to read them: --label-map {mapping} (each value to "
        "its label), --threshold T, or --labels with one name per label for a label each")


def _refuse_lost(facts: Sequence[MaskFacts], rule: MaskRule, cause: str) -> None:
    """Refuse a rule under which some mask's object vanishes or fills the image (e.g. 0/1
    masks among 0/255 ones under a threshold of 128), naming those files."""
    broken = [fact for fact in facts
              if loses_object(fact.values, rule.label_counts(fact.values, fact.path), fact.lossy)]
    if broken:
        example = broken[0]
        mapping = ",".join(f"{v}:{int(v > 0)}" for v in sorted({v for f in facts for v in f.values}
                                                              )[:6])
        raise LeafnetError(
            f"{rule.statement}: would leave {len(broken)} masks with no foreground or nothing "
            f"else ({_listing([f.path for f in broken])}; e.g. {example.path.name} holds "
            f"{_values_text(list(example.values))}): the files encode labels differently from "
            f"the rule ({cause}). Say how to read them: --label-map {mapping} (each value to "
            "its label), or --threshold T that fits every file")


def _refuse_all_empty(facts: Sequence[MaskFacts], rule: MaskRule) -> None:
    """Refuse a rule under which not one mask has any foreground: an empty channel chosen with
    --mask-channel, or masks that are not where leafnet looks."""
    if any(any(label and n for label, n in rule.label_counts(f.values, f.path).items())
           for f in facts):
        return
    raise LeafnetError(
        f"{rule.statement}: not one of the {len(facts)} masks has any foreground under this "
        f"rule ({_listing([f.path for f in facts])}), so every label would be empty. Check the "
        "mask folder, the channel read (--mask-channel N; alpha is the last channel) and "
        "--threshold / --label-map")


def _refuse_strays(facts: Sequence[MaskFacts], values: list[int], seen: str) -> None:
    """Lossless masks holding values other than their two extremes away from every edge (a
    speck of 7 in a 0/255 file) hold a stray value, not anti-aliasing: refuse, naming them."""
    strays = [f for f in facts if not f.lossy and f.stray]
    if not strays:
        return
    example = strays[0]
    raise LeafnetError(
        f"{seen}: {len(strays)} lossless files hold values other than their lowest and highest "
        f"away from any edge between the two ({_listing([f.path for f in strays])}; e.g. "
        f"{example.path.name}: {example.stray} such pixels, values "
        f"{_values_text(list(example.values))}), so they are neither a two-valued mask nor "
        f"anti-aliased edges. Say how to read them: --threshold T (foreground = value >= T, "
        f"e.g. {_half_way(values)}), --label-map SRC:DST,... (each value to its "
        "label), or clean the files")


def _binary_rule(values: list[int], totals: Counter[int], seen: str,
                 channel: int | None) -> MaskRule | None:
    """Two values (0/255, 0/2, ...), or two clusters of values at the extremes with shades on
    the edges between them (JPEG noise, anti-aliasing): threshold half-way. None when the
    values fit neither."""
    low, high = values[0], values[-1]
    cut = _half_way(values)
    if len(values) == 2:
        return MaskRule(threshold=cut, channel=channel,
                        statement=f"{seen} -> foreground = value >= {cut}")
    shades = _shades(values)
    in_between = set(shades)
    near = sum(count for value, count in totals.items() if value not in in_between)
    fraction = near / sum(totals.values())
    anti_aliased = high - low >= ANTI_ALIASED_RANGE and len(shades) >= 2
    if (fraction >= NEAR_EXTREMES_FRACTION or anti_aliased) and high - low >= 2:
        return MaskRule(threshold=cut, channel=channel, statement=(
            f"{seen}, {fraction:.1%} of pixels near {low} or {high} and the rest on edges "
            f"(compression noise or anti-aliased edges) -> foreground = value >= {cut}"))
    return None
