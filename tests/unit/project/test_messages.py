"""Class D of the safety issue, and I/O faults (B7): every command explains itself and ends
with one readable message that names the user's file."""

from __future__ import annotations

import configparser
import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import disc_mask, rgb, save
from PIL import Image

from leafnet.dataset_conversion import convert_demo, convert_folder
from leafnet.dataset_conversion.cli import main as convert_main
from leafnet.errors import LeafnetError
from leafnet.imageio import ImageReadError, read_image
from leafnet.planning import plan_and_preprocess
from leafnet.training.checkpointing import save_checkpoint
from leafnet.training.registry import find_trainer

QUIET = dict(num_processes=1, show_progress=False)
ROOT = Path(__file__).resolve().parents[3]


def console_scripts() -> list[tuple[str, str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return [tuple(part.strip() for part in line.split("=")) for line in lines]


HELP_PROBE = """
import contextlib, io, json, sys
results = {}
for name, module, function in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [name, "--help"]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            getattr(__import__(module, fromlist=[function]), function)()
        except SystemExit as stop:
            code = stop.code or 0
        except Exception as error:
            code, err = 1, io.StringIO(repr(error))
    results[name] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def help_outputs() -> dict[str, list]:
    """Every console script's ``--help`` in one fresh interpreter (one torch import instead of
    one per script): exit code, stdout and stderr by script name."""
    scripts = [[name, *target.split(":")] for name, target in console_scripts()]
    done = subprocess.run([sys.executable, "-c", HELP_PROBE, json.dumps(scripts)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name,target", console_scripts())
def test_every_console_script_prints_its_help(name, target, help_outputs):
    code, stdout, stderr = help_outputs[name]
    assert code == 0, stderr
    assert "usage:" in stdout


def test_an_image_beyond_the_decompression_bomb_limit_names_the_file_and_the_fix(
        tmp_path, monkeypatch):
    save(tmp_path / "big.png", rgb(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="big.png: has more pixels .*LEAFNET_MAX_IMAGE_PIXELS"):
        read_image(tmp_path / "big.png")
    monkeypatch.setenv("LEAFNET_MAX_IMAGE_PIXELS", str(64 * 64))
    assert read_image(tmp_path / "big.png")[0].shape == (3, 64, 64)


@pytest.mark.parametrize("argv", [["demo", "--size", "0"], ["demo", "--num-cases", "0"]])
def test_impossible_demo_settings_are_one_message(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        convert_main(argv)
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("leafnet_convert: error:") and "Traceback" not in error


def test_a_full_disk_while_saving_a_checkpoint_is_readable_and_leaves_no_file(tmp_path,
                                                                           monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    folder = tmp_path / "fold_0"
    folder.mkdir()
    with pytest.raises(LeafnetError, match="checkpoint_latest.pth: could not be written.*free"):
        save_checkpoint(folder / "checkpoint_latest.pth", {"trainer": "x"})
    assert list(folder.iterdir()) == []


def test_a_failed_integrity_check_names_no_deleted_temporary_folder(tmp_path):
    save(tmp_path / "img" / "a.png", rgb(16, 16))
    save(tmp_path / "img" / "b.png", rgb(16, 20))
    save(tmp_path / "msk" / "a.png", disc_mask(16, 16))
    save(tmp_path / "msk" / "b.png", disc_mask(16, 16))
    with pytest.raises(LeafnetError) as raised:
        convert_folder(tmp_path / "img", tmp_path / "msk", 50, "Sizes", **QUIET)
    assert ".tmp-convert" not in str(raised.value) and "nothing was written" in str(raised.value)


def test_planning_says_when_images_are_stretched_and_labels_are_tiny(leafnet_folders):
    raw = leafnet_folders["LEAFNET_RAW"] / "Dataset051_Wide"
    for index in range(5):
        save(raw / "imagesTr" / f"w{index}_0000.png", rgb(40, 80, index))
        tiny = np.zeros((40, 80), np.uint8)
        tiny[20, 40] = 1
        save(raw / "labelsTr" / f"w{index}.png", tiny if index == 0 else disc_mask(40, 80))
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "spot": 1},
        "numTraining": 5, "file_ending": ".png"}))
    notes = plan_and_preprocess(51, target_size=(64, 64), **QUIET).notes
    assert any("5 of 5 images have another aspect ratio" in note and "stretched" in note
               for note in notes)
    assert any("label spot covers under 1%" in note and "w0" in note for note in notes)


def test_a_trainer_that_stops_before_training_leaves_no_results_folder(leafnet_folders):
    convert_demo(num_cases=10, size=32, **QUIET)
    plan_and_preprocess(999, preset="tiny", target_size=(32, 32), **QUIET)
    trainer = find_trainer("LEAFTrainer_x0")(999, show_progress=False)
    with pytest.raises(LeafnetError, match="LEAFAutoencoderTrainer"):
        trainer.run()
    assert not trainer.output.exists()
    assert not any(leafnet_folders["LEAFNET_RESULTS"].rglob("*"))


def test_an_id_collision_names_both_files(tmp_path):
    for name in ("a b", "a_b"):
        save(tmp_path / "img" / f"{name}.png", rgb(16, 16))
        save(tmp_path / "msk" / f"{name}.png", disc_mask(16, 16))
    with pytest.raises(LeafnetError, match=r"a_b: .*a b\.png, .*a_b\.png"):
        convert_folder(tmp_path / "img", tmp_path / "msk", 52, "Clash", **QUIET)


def test_a_malformed_plans_entry_is_one_error_naming_the_file(leafnet_folders):
    convert_demo(num_cases=10, size=32, **QUIET)
    result = plan_and_preprocess(999, preset="tiny", target_size=(32, 32), **QUIET)
    path = result.folder / "leafnet_plans.json"
    plans = json.loads(path.read_text())
    del plans["label_handling"]
    path.write_text(json.dumps(plans))
    with pytest.raises(LeafnetError, match=r"leafnet_plans.json: plans entry missing or malformed"):
        find_trainer("LEAFTrainer_x0")(999, show_progress=False)
