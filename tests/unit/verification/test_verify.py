"""The integrity check: one test per kind of bad input, each asserting the file is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import disc_mask, make_raw_dataset, rgb, save
from PIL import Image

from leafnet.verification import (
    DatasetIntegrityError,
    assert_dataset_ok,
    verify_dataset,
)
from leafnet.verification.cli import main as verify_main


@pytest.fixture
def dataset(leafnet_folders):
    return make_raw_dataset(leafnet_folders["LEAFNET_RAW"])


def failure(folder) -> str:
    report = verify_dataset(folder, num_processes=1, show_progress=False)
    assert not report.ok
    return report.format()


def edit_json(folder, **changes):
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_valid_dataset_passes(dataset):
    report = assert_dataset_ok(dataset, num_processes=2, show_progress=False)
    assert report.num_cases == {"Tr": 6}


def test_image_without_label(dataset):
    (dataset / "labelsTr" / "case03.png").unlink()
    assert "imagesTr/case03_0000.png" in failure(dataset)
    assert "images without a label" in failure(dataset)


def test_label_without_image(dataset):
    save(dataset / "labelsTr" / "stray.png", disc_mask(24, 32))
    message = failure(dataset)
    assert "labels without an image" in message and "labelsTr/stray.png" in message


def test_size_mismatch(dataset):
    save(dataset / "labelsTr" / "case01.png", disc_mask(20, 32))
    message = failure(dataset)
    assert "sizes differ" in message and "case01_0000.png 32x24" in message
    assert "case01.png 32x20" in message


def test_label_values_outside_declared_with_0_255_hint(dataset):
    save(dataset / "labelsTr" / "case02.png", disc_mask(24, 32, foreground=255))
    message = failure(dataset)
    assert "labelsTr/case02.png: unexpected values [255]" in message
    assert "0/255" in message


def test_antialiased_labels_get_a_threshold_hint(dataset):
    smooth = np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8)
    save(dataset / "labelsTr" / "case02.png", smooth)
    message = failure(dataset)
    assert "labelsTr/case02.png" in message and "anti-aliased" in message


def test_rgba_images(dataset):
    save(dataset / "imagesTr" / "case04_0000.png", np.full((24, 32, 4), 200, np.uint8), "RGBA")
    message = failure(dataset)
    assert "alpha channel" in message and "imagesTr/case04_0000.png: mode RGBA" in message


def test_jpeg_labels(dataset):
    (dataset / "labelsTr" / "case00.png").unlink()
    Image.fromarray(disc_mask(24, 32)).save(dataset / "labelsTr" / "case00.jpg")
    message = failure(dataset)
    assert "JPEG label files" in message and "labelsTr/case00.jpg" in message


def test_jpeg_file_ending_in_dataset_json(dataset):
    edit_json(dataset, file_ending=".jpg")
    assert "labels must be lossless" in failure(dataset)


def test_mixed_channel_counts(dataset):
    save(dataset / "imagesTr" / "case05_0000.png", np.zeros((24, 32), np.uint8))
    message = failure(dataset)
    assert "mixed channel counts (5 cases have 3 channels, 1 cases have 1 channels)" in message
    assert "imagesTr/case05_0000.png: 1 channels" in message


def test_channel_count_disagrees_with_channel_names(dataset):
    edit_json(dataset, channel_names={"0": "gray"})
    message = failure(dataset)
    assert "images have 3, dataset.json declares 1" in message
    assert "imagesTr/case00_0000.png: 3 channels" in message


def test_multichannel_label(dataset):
    save(dataset / "labelsTr" / "case01.png", np.repeat(disc_mask(24, 32)[..., None], 3, -1))
    message = failure(dataset)
    assert "more than one channel" in message and "labelsTr/case01.png: 3 channels" in message


def test_file_endings_that_disagree(dataset):
    save(dataset / "imagesTr" / "case06_0000.bmp", rgb(24, 32))
    message = failure(dataset)
    assert "file endings that disagree" in message and "imagesTr/case06_0000.bmp" in message


def test_images_without_channel_suffix(dataset):
    save(dataset / "imagesTr" / "loose.png", rgb(24, 32))
    assert "imagesTr/loose.png" in failure(dataset)


def test_num_training_mismatch(dataset):
    edit_json(dataset, numTraining=9)
    assert 'numTraining is 9 in dataset.json but imagesTr/ holds 6 cases' in failure(dataset)


def test_unreadable_files(dataset):
    (dataset / "imagesTr" / "case02_0000.png").write_bytes(b"not a png at all")
    message = failure(dataset)
    assert "unreadable files" in message and "imagesTr/case02_0000.png" in message


def test_empty_dataset(leafnet_folders):
    folder = make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=0)
    (folder / "imagesTr").mkdir()
    assert "the dataset is empty" in failure(folder)


def test_bad_split_rule(dataset):
    edit_json(dataset, leafnet_split={"rule": "official_test", "val": 0.1})
    assert "needs imagesTs/" in failure(dataset)


def test_long_lists_show_the_first_few_then_a_count(leafnet_folders):
    folder = make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=9)
    for index in range(9):
        save(folder / "labelsTr" / f"case{index:02d}.png", disc_mask(24, 32, foreground=255))
    message = failure(folder)
    assert "(9 files)" in message and "... and 4 more" in message


def test_every_problem_is_reported_at_once(dataset):
    (dataset / "labelsTr" / "case03.png").unlink()
    edit_json(dataset, numTraining=2)
    with pytest.raises(DatasetIntegrityError) as raised:
        assert_dataset_ok(dataset, num_processes=1, show_progress=False)
    assert len(raised.value.report.problems) == 2


def test_cli_fails_with_one_readable_message(dataset, capsys):
    save(dataset / "labelsTr" / "case02.png", disc_mask(24, 32, foreground=255))
    with pytest.raises(SystemExit) as exited:
        verify_main(["-d", "10"])
    assert exited.value.code != 0
    error = capsys.readouterr().err
    assert "leafnet_verify: error: Dataset010_Toy failed the integrity check" in error
    assert "Traceback" not in error and "labelsTr/case02.png" in error


def test_cli_unknown_dataset_lists_what_exists(dataset, capsys):
    with pytest.raises(SystemExit):
        verify_main(["-d", "42"])
    error = capsys.readouterr().err
    assert "no raw dataset with id 042" in error and "Dataset010_Toy" in error
    assert "leafnet_convert" in error


def test_cli_passes_on_a_valid_dataset(dataset, capsys):
    verify_main(["-d", "Dataset010_Toy", "-np", "1"])
    assert "integrity check passed (6 Tr cases)" in capsys.readouterr().out


def test_case_ids_in_both_training_and_test_sets(dataset):
    save(dataset / "imagesTs" / "case01_0000.png", rgb(24, 32))
    save(dataset / "labelsTs" / "case01.png", disc_mask(24, 32))
    message = failure(dataset)
    assert "case ids used in both imagesTr and imagesTs" in message and "case01" in message
