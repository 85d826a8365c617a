"""One message instead of a traceback, or a note instead of silence (issue 35's "also fix"):
each case a careless user or an adversary met."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import disc_mask, rgb, save

from leafnet.dataset_conversion import convert_demo, convert_folder
from leafnet.dataset_conversion.cli import main as convert_main
from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.imageio import read_image
from leafnet.planning import plan_and_preprocess
from leafnet.training.cli import main as train_main
from leafnet.utilities.json_files import read_json
from leafnet.utilities.machine import usable_device
from leafnet.utilities.parallel import default_num_processes

QUIET = {"num_processes": 1, "show_progress": False}


def test_a_negative_seed_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        train_main(["999", "LEAFTrainer_x0", "--seed", "-1"])
    assert "--seed" in capsys.readouterr().err


def test_non_numeric_environment_settings_name_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAFNET_NUM_PROCESSES", "two")
    with pytest.raises(LeafnetError, match="LEAFNET_NUM_PROCESSES='two' is not a number"):
        default_num_processes()
    save(tmp_path / "a.png", rgb(8, 8))
    monkeypatch.setenv("LEAFNET_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(LeafnetError, match="LEAFNET_MAX_IMAGE_PIXELS='lots' is not a number"):
        read_image(tmp_path / "a.png")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_that_is_not_here_is_one_message():
    with pytest.raises(LeafnetError, match="-device cuda: torch sees no CUDA GPU"):
        usable_device("cuda")
    assert usable_device("cpu") == "cpu"


def test_json_files_that_are_not_utf8_are_named(tmp_path):
    (tmp_path / "splits_final.json").write_bytes(b'{"folds": "\xff\xfe"}')
    with pytest.raises(LeafnetError, match="splits_final.json: is not valid JSON"):
        read_json(tmp_path / "splits_final.json")


def test_a_summary_with_an_undefined_hd95_is_strict_json(tmp_path):
    save(tmp_path / "ref" / "a.png", np.zeros((8, 8), np.uint8))
    save(tmp_path / "pred" / "a.png", np.zeros((8, 8), np.uint8))
    save(tmp_path / "pred" / "extra.png", np.zeros((8, 8), np.uint8))
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", labels=[1], with_hd95=True)
    assert math.isnan(summary.mean["1"]["HD95"])
    assert any("1 predictions in" in note and "extra" in note for note in summary.notes)
    summary.save(tmp_path / "summary.json")
    text = (tmp_path / "summary.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in summary.json"))


def _one_label_folder(tmp_path):
    for name in ("a", "b"):
        save(tmp_path / "img" / f"{name}.png", rgb(16, 16))
        save(tmp_path / "disc" / f"{name}.png", disc_mask(16, 16, 255))
        save(tmp_path / "cup" / f"{name}.png", disc_mask(16, 16, 255))


def test_named_options_that_fit_no_mask_folder_are_refused(tmp_path, capsys):
    _one_label_folder(tmp_path)
    masks = {"disc": tmp_path / "disc", "cup": tmp_path / "cup"}
    with pytest.raises(LeafnetError, match="--threshold foo=...: no mask folder is named foo"):
        convert_folder(tmp_path / "img", masks, 31, "X", threshold={"foo": 128.0},
                       nested=True, **QUIET)
    with pytest.raises(LeafnetError, match="--labels names the values of one mask folder"):
        convert_folder(tmp_path / "img", masks, 31, "X", labels=["background", "rim"],
                       nested=True, **QUIET)
    with pytest.raises(SystemExit):
        convert_main(["folder", "--images", str(tmp_path / "img"), "--masks",
                      str(tmp_path / "disc"), "--threshold", "cup=128", "-d", "31",
                      "--name", "X", "-np", "1"])
    assert "--threshold NAME=T and --test-masks NAME=DIR name a label's mask folder" in \
        capsys.readouterr().err


def test_planning_refuses_plans_made_for_other_channels(leafnet_folders):
    folder, _ = convert_demo(num_cases=10, size=32, **QUIET)
    plan_and_preprocess(999, preset="tiny", target_size=(32, 32), **QUIET)
    dataset_json = folder / "dataset.json"
    data = json.loads(dataset_json.read_text())
    data["channel_names"] = {"0": "CT", "1": "CT2", "2": "CT3"}
    dataset_json.write_text(json.dumps(data))
    with pytest.raises(LeafnetError, match="channels .* in the plans, .*CT.* in the raw dataset"):
        plan_and_preprocess(999, **QUIET)


def test_a_crop_margin_beyond_the_image_is_refused_when_the_plans_are_read():
    from leafnet.preprocessing.label_scheme import LabelScheme
    from leafnet.preprocessing.plans import Plans

    content = {"data_identifier": "x", "target_size": [64, 64], "num_channels": 3,
               "normalisation": {"windows": [{"lower": 0, "upper": 255}] * 3},
               "labels": {"background": 0, "spot": 1},
               "label_handling": LabelScheme.for_dataset({"background": 0, "spot": 1}).to_json(),
               "batch_size": 2, "preset": "tiny",
               "previous_stage": {"plans": "leafnetPlans", "margin": 1e9}}
    with pytest.raises(LeafnetError, match="margin must be a number from 1 to 10"):
        Plans.from_json(content, "edited plans")


def test_evaluate_writes_into_a_folder_given_as_its_output(tmp_path):
    from leafnet.evaluation.cli import main as evaluate_main

    save(tmp_path / "ref" / "a.png", disc_mask(16, 16))
    save(tmp_path / "pred" / "a.png", disc_mask(16, 16))
    (tmp_path / "out").mkdir()
    for folder in ("out", "new_folder"):   # an existing folder, and one that is not there yet
        evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o",
                       str(tmp_path / folder)])
        assert json.loads((tmp_path / folder / "summary.json").read_text())["num_cases"] == 1


def test_lam_on_a_trainer_without_a_teacher_is_refused():
    from leafnet.training.registry import find_trainer

    with pytest.raises(LeafnetError, match="--lam weights the feature alignment .* has none"):
        find_trainer("LEAFTrainer_x0")(999, lam=0.5)
