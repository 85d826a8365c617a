"""The mask rule a dataset.json records: the converter writes the rule it read the source
masks by, and evaluation reads references by it (or by the dataset's label values) instead of
deciding a rule from the files again."""

from __future__ import annotations

import json

import pytest
from conftest import disc_mask, rgb, save

from leafnet.dataset_conversion import convert_folder
from leafnet.errors import LeafnetError
from leafnet.evaluation.cli import main as evaluate_main
from leafnet.imageio.mask_rule import MaskRule
from leafnet.raw_format import ONE_MASK_FOLDER, load_dataset_json

QUIET = {"num_processes": 1, "show_progress": False}


def _inverted_dataset(tmp_path):
    """Masks whose object is dark (0) on white (255), converted with the map that says so."""
    for name in ("a", "b", "c"):
        save(tmp_path / "img" / f"{name}.png", rgb(16, 16))
        save(tmp_path / "msk" / f"{name}.png", 255 - disc_mask(16, 16, foreground=255))
    folder, _ = convert_folder(tmp_path / "img", tmp_path / "msk", 21, "Dark",
                               label_map=((0, 1), (255, 0)), **QUIET)
    return folder


def test_conversion_records_its_rule_and_evaluation_reads_the_sources_by_it(tmp_path, capsys):
    folder = _inverted_dataset(tmp_path)
    recorded = load_dataset_json(folder).mask_rules
    assert recorded.one_folder_rule.label_map == ((0, 1), (255, 0))
    assert json.loads((folder / "dataset.json").read_text())["leafnet_mask_rule"]["rules"][
        ONE_MASK_FOLDER]["label_map"] == [[0, 1], [255, 0]]
    predictions = folder / "labelsTr"
    # the source masks, read by the recorded rule: the converted labels match them exactly
    evaluate_main(["-ref", str(tmp_path / "msk"), "-pred", str(predictions), "-djfile",
                   str(folder / "dataset.json"), "-o", str(tmp_path / "by_rule.json")])
    by_rule = json.loads((tmp_path / "by_rule.json").read_text())
    assert by_rule["foreground_mean"]["Dice"] == 1.0
    assert "by the converter's rule in dataset.json" in by_rule["mask_rules"][0]
    # the dataset's own label files are read by its label values
    evaluate_main(["-ref", str(predictions), "-pred", str(predictions), "-djfile",
                   str(folder / "dataset.json"), "-o", str(tmp_path / "labels.json")])
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert "the label values of dataset.json (background 0, foreground 1)" in \
        labels["mask_rules"][0]
    # without the dataset.json a rule is decided from the files: 255 is the object then
    evaluate_main(["-ref", str(tmp_path / "msk"), "-pred", str(predictions), "-o",
                   str(tmp_path / "decided.json")])
    assert json.loads((tmp_path / "decided.json").read_text())["foreground_mean"]["Dice"] < 0.5


def test_a_recorded_rule_round_trips_and_older_records_keep_their_words(tmp_path):
    rule = MaskRule(threshold=128.0, channel=1, statement="values {0,255} -> >= 128",
                    bands=((64.0, 0), (192.0, 1), (256.0, 2)))
    assert MaskRule.from_json(rule.to_json(), "x") == rule
    with pytest.raises(LeafnetError, match="x: leafnet_mask_rule is not a mask rule"):
        MaskRule.from_json({"threshold": "high"}, "x")
    folder = _inverted_dataset(tmp_path)
    data = json.loads((folder / "dataset.json").read_text())
    data["leafnet_mask_rule"] = "values {0,255} in 3 files -> label map"
    (folder / "dataset.json").write_text(json.dumps(data))
    older = load_dataset_json(folder).mask_rules
    assert older.statement.startswith("values {0,255}") and older.one_folder_rule is None
    assert older.rules == {}
