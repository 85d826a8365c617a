"""The integrity check: every way a raw dataset can be wrong, reported with file names and fixes.

:func:`verify_dataset` collects problems instead of stopping at the first, so a user fixes a
dataset in one round; :func:`assert_dataset_ok` turns a failed report into one readable error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.imageio import LOSSY_ENDINGS, file_ending
from leafnet.raw_format import (
    CaseListing,
    DatasetDescription,
    list_cases,
    load_dataset_json,
    split_rule_problems,
)
from leafnet.utilities.parallel import parallel_map
from leafnet.verification.case_inspection import CaseFacts, inspect_case

MAX_LISTED_FILES = 5


@dataclass
class Problem:
    """One kind of defect, the files that show it (with details) and how to fix it."""

    title: str
    items: list[str] = field(default_factory=list)
    fix: str = ""

    def format(self, max_items: int = MAX_LISTED_FILES) -> str:
        lines = [f"{self.title}" + (f" ({len(self.items)} files)" if len(self.items) > 1 else "")]
        lines += [f"    {item}" for item in self.items[:max_items]]
        if len(self.items) > max_items:
            lines.append(f"    ... and {len(self.items) - max_items} more")
        if self.fix:
            lines.append(f"  Fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class VerificationReport:
    """The outcome of :func:`verify_dataset`."""

    dataset_folder: Path
    problems: list[Problem]
    num_cases: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        name = self.dataset_folder.name
        if self.ok:
            counts = ", ".join(f"{n} {subset}" for subset, n in self.num_cases.items())
            return f"{name}: integrity check passed ({counts} cases)"
        lines = [
            f"{name} failed the integrity check with {len(self.problems)} problem"
            f"{'s' if len(self.problems) > 1 else ''} ({self.dataset_folder}):"
        ]
        for index, problem in enumerate(self.problems, start=1):
            lines.append(f"{index}. {problem.format()}")
        return "\n".join(lines)


class DatasetIntegrityError(LeafnetError):
    """A dataset that failed the integrity check; the message is the whole report."""

    def __init__(self, report: VerificationReport) -> None:
        super().__init__(report.format())
        self.report = report


class _Checker:
    """Accumulates problems for one dataset; each method covers one family of defects."""

    def __init__(self, folder: Path, description: DatasetDescription) -> None:
        self.folder = folder
        self.description = description
        self.problems: list[Problem] = []

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.folder))

    def add(self, title: str, items: list[str], fix: str) -> None:
        if items:
            self.problems.append(Problem(title, items, fix))

    def check_names(self, listing: CaseListing, subset: str, labels_expected: bool) -> None:
        d = self.description
        jpeg_labels = [p for p in listing.wrong_ending if p.parent.name.startswith("labels")
                       and file_ending(p) in LOSSY_ENDINGS]
        self.add(
            "JPEG label files (labels must be lossless)",
            [self.relative(p) for p in jpeg_labels],
            "JPEG compression changes label values at edges. Re-create the labels as PNG, e.g. "
            "with 'leafnet_convert folder --images DIR --masks DIR --threshold 128', which "
            "binarises JPEG masks",
        )
        others = [p for p in listing.wrong_ending if p not in jpeg_labels]
        self.add(
            f"file endings that disagree with dataset.json (images {d.image_ending}, "
            f"labels {d.file_ending})",
            [self.relative(p) for p in others],
            "convert these files to the declared format, or correct 'file_ending' / "
            "'image_file_ending' in dataset.json",
        )
        self.add(
            f"image files without the channel suffix _XXXX in images{subset}",
            [self.relative(p) for p in listing.misnamed_images],
            f"name images CASE_0000{d.image_ending} (one file per channel group, numbered from "
            "0000) and labels CASE" + d.file_ending,
        )
        cases = listing.cases.values()
        self.add(
            f"images without a label in labels{subset}",
            [self.relative(c.images[0]) for c in cases if c.images and c.label is None]
            if labels_expected else [],
            f"add labels{subset}/CASE{d.file_ending} for each case, or remove the images",
        )
        self.add(
            f"labels without an image in images{subset}",
            [self.relative(c.label) for c in cases if c.label is not None and not c.images],
            f"add images{subset}/CASE_0000{d.image_ending}, or remove the labels",
        )
        gaps = [
            f"{c.case_id}: {', '.join(p.name for p in c.images)}"
            for c in cases
            if [p.name[len(c.case_id):len(c.case_id) + 5] for p in c.images]
            != [f"_{i:04d}" for i in range(len(c.images))]
        ]
        self.add(
            f"cases whose channel files are not numbered _0000, _0001, ... in images{subset}",
            gaps,
            "number each case's image files consecutively from _0000",
        )

    def check_contents(self, facts: list[CaseFacts]) -> None:
        unreadable = [f"{self.relative(f.path)}: {f.error}"
                      for c in facts for f in c.images + ([c.label] if c.label else []) if f.error]
        self.add("unreadable files", unreadable,
                 "re-export or remove these files (are they truncated, or of another format?)")
        self.add(
            "images with an alpha channel (RGBA)",
            [f"{self.relative(f.path)}: mode {f.mode}"
             for c in facts for f in c.images if f.has_alpha],
            "save them as RGB (or grayscale) without transparency, e.g. "
            "PIL.Image.open(p).convert('RGB').save(p)",
        )
        self._check_channels(facts)
        mismatched = []
        for case in facts:
            shapes = {f.shape for f in case.images if f.shape is not None}
            label_shape = case.label.shape if case.label and case.label.shape else None
            if len(shapes) > 1 or (label_shape and shapes and label_shape not in shapes):
                parts = [f"{f.path.name} {_size(f.shape)}" for f in case.images if f.shape]
                if label_shape:
                    parts.append(f"{case.label.path.name} {_size(label_shape)}")
                mismatched.append(f"{case.case_id}: " + ", ".join(parts))
        self.add("cases whose image and label sizes differ", mismatched,
                 "images and labels of a case must have the same height and width; "
                 "resample the label to the image (nearest neighbour) or crop consistently")
        self._check_label_values(facts)

    def _check_channels(self, facts: list[CaseFacts]) -> None:
        d = self.description
        counts = {
            self.relative(c.images[0].path): sum(f.channels for f in c.images)
            for c in facts
            if c.images and all(f.error is None and not f.has_alpha for f in c.images)
        }
        histogram = Counter(counts.values())
        if len(histogram) > 1:
            majority = histogram.most_common(1)[0][0]
            summary = ", ".join(f"{n} cases have {k} channels" for k, n in histogram.items())
            self.add(
                f"mixed channel counts ({summary})",
                [f"{path}: {n} channels" for path, n in counts.items() if n != majority],
                f"dataset.json declares {d.num_channels} channel(s) "
                f"({', '.join(d.channel_names.values())}); convert every image to that "
                "(e.g. grayscale to RGB, or RGB to grayscale)",
            )
        elif histogram and next(iter(histogram)) != d.num_channels:
            found = next(iter(histogram))
            self.add(
                f"channel counts disagree with channel_names: images have {found}, "
                f"dataset.json declares {d.num_channels}",
                [f"{path}: {n} channels" for path, n in counts.items()],
                f"set 'channel_names' to {found} entries (RGB: "
                '{"0": "R", "1": "G", "2": "B"}) or convert the images',
            )
        multichannel = [
            f"{self.relative(c.label.path)}: {c.label.channels} channels ({c.label.mode})"
            for c in facts if c.label and c.label.error is None and c.label.channels != 1
        ]
        self.add("label files with more than one channel", multichannel,
                 "save labels as single-channel (grayscale or palette) images holding the "
                 "label values")

    def _check_label_values(self, facts: list[CaseFacts]) -> None:
        d = self.description
        declared = set(float(v) for v in d.label_values)
        bad = [
            (c.label, sorted(set(c.label.values) - declared))
            for c in facts
            if c.label and c.label.error is None and c.label.channels == 1
            and not set(c.label.values) <= declared
        ]
        if not bad:
            return
        extra = set(v for _, values in bad for v in values)
        if extra <= {255.0}:
            hint = ("these look like 0/255 masks: store the foreground as 1 (convert with "
                    "'leafnet_convert folder --images DIR --masks DIR --threshold 128')")
        elif len(extra) > 8:
            hint = ("these look anti-aliased or JPEG-compressed (many distinct values): "
                    "threshold them (leafnet_convert folder ... --threshold 128) and save "
                    "resized masks with nearest-neighbour interpolation")
        else:
            hint = ("declare every value in 'labels' of dataset.json, or remap the values "
                    "(leafnet_convert folder ... --label-map 'SRC:DST,...')")
        labels = ", ".join(f"{v}: {k}" for k, v in sorted(d.labels.items(), key=lambda kv: kv[1]))
        self.add(
            f"label values outside the declared labels {{{labels}}}",
            [f"{self.relative(f.path)}: unexpected values {_values(v)}" for f, v in bad],
            hint,
        )


def _size(shape: tuple[int, int] | None) -> str:
    return f"{shape[1]}x{shape[0]}" if shape else "?"


def _values(values: list[float]) -> str:
    shown = [int(v) if float(v).is_integer() else v for v in values[:8]]
    more = f" ... ({len(values)} values)" if len(values) > 8 else ""
    return f"{shown}{more}"


def verify_dataset(dataset_folder: Path, num_processes: int | None = None,
                   show_progress: bool = True) -> VerificationReport:
    """Check a raw dataset completely and return every problem found (files read in parallel)."""
    dataset_folder = Path(dataset_folder)
    if not dataset_folder.is_dir():
        raise LeafnetError(f"{dataset_folder}: no such dataset folder")
    try:
        description = load_dataset_json(dataset_folder)
    except LeafnetError as error:
        return VerificationReport(dataset_folder, [Problem(f"dataset.json: {error}")], {})
    checker = _Checker(dataset_folder, description)
    if not (dataset_folder / "imagesTr").is_dir():
        checker.add("imagesTr/ is missing", [str(dataset_folder / "imagesTr")],
                    "put the training images in imagesTr/ and their labels in labelsTr/")
    has_test = (dataset_folder / "imagesTs").is_dir()
    checker.problems += [Problem(f"dataset.json: {p}") for p in
                         split_rule_problems(description.split, has_test)]
    num_cases: dict[str, int] = {}
    all_facts: list[CaseFacts] = []
    listings = {}
    for subset in ("Tr", "Ts"):
        if subset == "Ts" and not has_test:
            continue
        listing = list_cases(dataset_folder, subset, description.image_ending,
                             description.file_ending)
        labels_expected = subset == "Tr" or (dataset_folder / "labelsTs").is_dir()
        checker.check_names(listing, subset, labels_expected)
        listings[subset] = listing
        num_cases[subset] = sum(1 for c in listing.cases.values() if c.images)
        all_facts += parallel_map(inspect_case, listing.cases.values(), num_processes,
                                  f"verifying {dataset_folder.name} ({subset})", show_progress)
    checker.check_contents(all_facts)
    _check_counts(checker, description, num_cases, listings)
    return VerificationReport(dataset_folder, checker.problems, num_cases)


def _check_counts(checker: _Checker, description: DatasetDescription,
                  num_cases: dict[str, int], listings: dict[str, CaseListing]) -> None:
    training = num_cases.get("Tr", 0)
    if training == 0 and (checker.folder / "imagesTr").is_dir():
        checker.problems.append(Problem(
            "the dataset is empty: imagesTr/ holds no images",
            fix=f"add images named CASE_0000{description.image_ending} (or run leafnet_convert)"))
    elif training != description.num_training:
        checker.problems.append(Problem(
            f"numTraining is {description.num_training} in dataset.json but imagesTr/ holds "
            f"{training} cases", fix=f"set \"numTraining\": {training} in dataset.json"))
    if description.num_test is not None and num_cases.get("Ts", 0) != description.num_test:
        checker.problems.append(Problem(
            f"numTest is {description.num_test} in dataset.json but imagesTs/ holds "
            f"{num_cases.get('Ts', 0)} cases",
            fix=f"set \"numTest\": {num_cases.get('Ts', 0)} in dataset.json"))
    if "Tr" in listings and "Ts" in listings:
        both = sorted(set(listings["Tr"].cases) & set(listings["Ts"].cases))
        checker.add("case ids used in both imagesTr and imagesTs", both,
                    "rename the test cases so that every case id is unique in the dataset")
    val_cases = description.split.get("val_cases") if isinstance(description.split, dict) else None
    if isinstance(val_cases, list) and "Tr" in listings:
        missing = [c for c in val_cases if c not in listings["Tr"].cases]
        checker.add("leafnet_split.val_cases names cases that are not in imagesTr",
                    [str(c) for c in missing], "remove them from val_cases or add the cases")


def assert_dataset_ok(dataset_folder: Path, num_processes: int | None = None,
                      show_progress: bool = True) -> VerificationReport:
    """Run :func:`verify_dataset` and raise :class:`DatasetIntegrityError` if anything is wrong."""
    report = verify_dataset(dataset_folder, num_processes, show_progress)
    if not report.ok:
        raise DatasetIntegrityError(report)
    return report
