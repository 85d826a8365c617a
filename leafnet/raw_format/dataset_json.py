"""dataset.json: reading it with clear errors, writing it, and checking leafnet's split rule.

Beside nnU-Net v2's keys (``channel_names``, ``labels``, ``numTraining``, ``file_ending``),
leafnet reads two of its own:

- ``image_file_ending`` (optional): the images' ending when it differs from the labels', so
  that JPEG images can be kept as they came while labels stay lossless.
- ``leafnet_split``: how planning splits the cases, one of

  - ``{"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1}`` fractions of imagesTr;
  - ``{"rule": "official_test", "val": 0.1}`` imagesTs is the test set and a seeded fraction
    of imagesTr is validation, or ``{"rule": "official_test", "val_cases": [...]}`` names it;
  - ``{"rule": "kfold", "folds": 5}`` cross-validation over imagesTr (imagesTs, if any, is test).

  Every rule may carry ``"seed"`` (an integer) for its shuffle.

Nested regions use nnU-Net's keys: a region's ``labels`` entry is the list of label values it
covers and ``regions_class_order`` the value written for each region, in the order of the
regions, e.g. ``{"background": 0, "disc": [1, 2], "cup": 2}`` with ``[1, 2]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.imageio import IMAGE_ENDINGS, LABEL_ENDINGS
from leafnet.imageio.mask_rule import MaskRule

SPLIT_RULES = ("ratio", "official_test", "kfold")


ONE_MASK_FOLDER = ""


@dataclass(frozen=True)
class SourceMaskRules:
    """How the converter read the source masks (``leafnet_mask_rule``): the rule in words and
    the rule itself, one for the dataset's mask folder (key ``ONE_MASK_FOLDER``) or one per
    label folder (keyed by label name). Datasets converted before the rules were recorded
    have the words only."""

    statement: str
    rules: dict[str, MaskRule] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement,
                "rules": {key: rule.to_json() for key, rule in self.rules.items()}}

    @classmethod
    def from_json(cls, data: Any, source: Path) -> SourceMaskRules:
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict) or not isinstance(data.get("rules", {}), dict):
            raise LeafnetError(f"{source}: leafnet_mask_rule must be the converter's record "
                               "({\"statement\": ..., \"rules\": {...}}); convert the "
                               "dataset again")
        return cls(str(data.get("statement", "")), {
            str(key): MaskRule.from_json(rule, source)
            for key, rule in data.get("rules", {}).items()})

    @property
    def one_folder_rule(self) -> MaskRule | None:
        """The rule of a dataset converted from one mask folder, else None."""
        return self.rules.get(ONE_MASK_FOLDER)


@dataclass
class DatasetDescription:
    """The parsed content of one dataset.json."""

    name: str
    channel_names: dict[str, str]
    labels: dict[str, int]
    num_training: int
    file_ending: str
    split: dict[str, Any]
    image_file_ending: str | None = None
    num_test: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    regions: dict[str, list[int]] = field(default_factory=dict)
    mask_rules: SourceMaskRules | None = None

    @property
    def image_ending(self) -> str:
        """The ending of image files (labels always use ``file_ending``)."""
        return self.image_file_ending or self.file_ending

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_values(self) -> list[int]:
        return sorted(self.labels.values())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        data.update(self.extra)
        data.update(
            {
                "channel_names": self.channel_names,
                "labels": self.labels,
                "numTraining": self.num_training,
                "file_ending": self.file_ending,
            }
        )
        if self.regions:
            data["labels"] = {"background": 0, **{
                name: values if len(values) > 1 else values[0]
                for name, values in self.regions.items()}}
            data["regions_class_order"] = [self.labels[name] for name in self.regions]
        if self.image_file_ending and self.image_file_ending != self.file_ending:
            data["image_file_ending"] = self.image_file_ending
        if self.num_test is not None:
            data["numTest"] = self.num_test
        data["leafnet_split"] = self.split
        if self.mask_rules is not None:
            data["leafnet_mask_rule"] = self.mask_rules.to_json()
        return data

    def label_file_rule(self) -> MaskRule:
        """How labelsTr / labelsTs are read: their values are the labels of dataset.json."""
        return MaskRule(statement="the label values of dataset.json ("
                        + ", ".join(f"{name} {value}" for name, value in self.labels.items())
                        + ")")


def _fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def split_rule_problems(rule: object, has_test_set: bool) -> list[str]:
    """What is wrong with a ``leafnet_split`` value (empty when it is valid)."""
    examples = (
        '{"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1}, '
        '{"rule": "official_test", "val": 0.1} or {"rule": "kfold", "folds": 5}'
    )
    if not isinstance(rule, dict) or rule.get("rule") not in SPLIT_RULES:
        return [f"'leafnet_split' must be one of {examples}; found {json.dumps(rule)}"]
    problems = []
    seed = rule.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"'leafnet_split.seed' must be an integer, found {seed!r}")
    kind = rule["rule"]
    if kind == "ratio":
        parts = {key: rule.get(key, 0) for key in ("train", "val", "test")}
        if not all(_fraction(value) for value in parts.values()):
            problems.append(f"ratio split fractions must lie in [0, 1], found {parts}")
        elif abs(sum(parts.values()) - 1) > 1e-6 or parts["train"] == 0:
            problems.append(f"ratio split fractions must sum to 1 with train > 0, found {parts}")
    elif kind == "official_test":
        if not has_test_set:
            problems.append(
                "split rule 'official_test' needs imagesTs/ and labelsTs/, which are missing"
            )
        if "val_cases" in rule:
            cases = rule["val_cases"]
            if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
                problems.append("'leafnet_split.val_cases' must be a list of case ids")
        elif not _fraction(rule.get("val", 0.1)) or rule.get("val", 0.1) >= 1:
            problems.append(f"'leafnet_split.val' must lie in [0, 1), found {rule.get('val')!r}")
    else:
        folds = rule.get("folds")
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            problems.append(f"'leafnet_split.folds' must be an integer >= 2, found {folds!r}")
    return problems


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in data:
        raise LeafnetError(f"{path}: the key '{key}' is missing")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LeafnetError(f"{path}: '{key}' must be a {kind.__name__}, found {value!r}")
    return value


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_regions(labels: dict[str, Any], order: object,
                   path: Path) -> tuple[dict[str, int], dict[str, list[int]]]:
    """nnU-Net's region keys -> (label value written per region name, region values)."""
    names = [name for name, value in labels.items() if value != 0]
    if not isinstance(order, list) or not all(_integer(v) for v in order) \
            or len(order) != len(names):
        raise LeafnetError(
            f"{path}: 'labels' has regions (lists of values), so 'regions_class_order' must list "
            f"the label value written for each of the {len(names)} regions {names}, in their "
            f"order, e.g. {list(range(1, len(names) + 1))}; found {order!r}")
    regions = {}
    for name in names:
        value = labels[name]
        values = [value] if _integer(value) else value
        if not isinstance(values, list) or not values or not all(_integer(v) for v in values):
            raise LeafnetError(f"{path}: region '{name}' must be a label value or a list of "
                               f"them, found {value!r}")
        regions[name] = sorted(set(values))
    covered = sorted({v for values in regions.values() for v in values})
    if covered != sorted(set(order)):
        raise LeafnetError(f"{path}: the regions cover label values {covered} but "
                           f"'regions_class_order' writes {order}; every value in the label "
                           "files must be written by one region")
    return {"background": 0, **dict(zip(names, order, strict=True))}, regions


def _parse_labels(labels: dict[str, Any], path: Path,
                  order: object = None) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The label values by name (for a region dataset, the value each region writes) and the
    regions (empty for plain labels)."""
    regions: dict[str, list[int]] = {}
    if 0 not in labels.values():
        raise LeafnetError(f"{path}: 'labels' must contain background with value 0")
    if not all(_integer(v) for v in labels.values()) or order is not None:
        if order is None:
            raise LeafnetError(
                f"{path}: 'labels' must map names to integers, e.g. "
                '{"background": 0, "polyp": 1}, or, for nested regions, to lists of values with '
                "'regions_class_order' (nnU-Net's region format)")
        labels, regions = _parse_regions(labels, order, path)
    values = sorted(labels.values())
    if values != list(range(len(values))):
        raise LeafnetError(
            f"{path}: label values must be consecutive integers 0..N-1, found {values}"
        )
    return dict(labels), regions


def _parse_ending(value: object, allowed: tuple[str, ...], key: str, path: Path) -> str:
    if key == "file_ending" and value in (".jpg", ".jpeg"):
        raise LeafnetError(
            f"{path}: 'file_ending' is {value}, but labels must be lossless (JPEG changes label "
            "values at edges). Store labels as .png and keep JPEG images with "
            '"image_file_ending": ".jpg"'
        )
    if value not in allowed:
        raise LeafnetError(f"{path}: '{key}' must be one of {', '.join(allowed)}, found {value!r}")
    return str(value)


def load_dataset_json(dataset_folder: Path) -> DatasetDescription:
    """Parse ``dataset_folder/dataset.json``; every problem is an error naming the file and key."""
    path = dataset_folder / "dataset.json"
    if not path.is_file():
        raise LeafnetError(
            f"{path} is missing; every raw dataset needs one (see README: 'The raw dataset format')"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LeafnetError(f"{path}: is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise LeafnetError(f"{path}: must hold a JSON object")
    channel_names = _require(data, "channel_names", dict, path)
    if not channel_names or sorted(channel_names) != [str(i) for i in range(len(channel_names))]:
        raise LeafnetError(
            f"{path}: 'channel_names' keys must be \"0\", \"1\", ... (found {list(channel_names)})"
        )
    labels, regions = _parse_labels(_require(data, "labels", dict, path), path,
                                    data.get("regions_class_order"))
    num_training = _require(data, "numTraining", int, path)
    file_ending = _parse_ending(data.get("file_ending"), LABEL_ENDINGS, "file_ending", path)
    image_file_ending = data.get("image_file_ending")
    if image_file_ending is not None:
        image_file_ending = _parse_ending(
            image_file_ending, IMAGE_ENDINGS, "image_file_ending", path
        )
    known = {
        "name", "channel_names", "labels", "numTraining", "file_ending",
        "image_file_ending", "numTest", "leafnet_split", "regions_class_order",
        "leafnet_mask_rule",
    }
    return DatasetDescription(
        name=str(data.get("name", dataset_folder.name)),
        channel_names={str(k): str(v) for k, v in channel_names.items()},
        labels=labels,
        num_training=num_training,
        file_ending=file_ending,
        image_file_ending=image_file_ending,
        num_test=data.get("numTest"),
        split=data.get("leafnet_split", {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1}),
        extra={k: v for k, v in data.items() if k not in known},
        regions=regions,
        mask_rules=(None if data.get("leafnet_mask_rule") is None
                    else SourceMaskRules.from_json(data["leafnet_mask_rule"], path)),
    )


def write_dataset_json(dataset_folder: Path, description: DatasetDescription) -> None:
    """Write ``dataset_folder/dataset.json`` atomically."""
    write_json(dataset_folder / "dataset.json", description.to_json())
