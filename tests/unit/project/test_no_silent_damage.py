"""Round two of the safety issue: masks in alpha or in an empty channel, third values that are
regions, nested masks in the wrong order, splits edited after planning, damaged arrays, absurd
plans and nonsense numeric flags are refused with one message naming the file and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import disc_mask, make_raw_dataset, rgb, save
from PIL import Image
from scipy import ndimage

from leafnet.dataset_conversion import convert_folder
from leafnet.errors import LeafnetError
from leafnet.evaluation.cli import main as evaluate_main
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.imageio import read_label
from leafnet.planning import plan_and_preprocess
from leafnet.planning.splits import check_splits
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import case_paths
from leafnet.training.cli import main as train_main
from leafnet.training.registry import find_trainer

QUIET = dict(num_processes=1, show_progress=False)


def _pairs(tmp_path, masks, ending=".png"):
    for name, mask in masks.items():
        save(tmp_path / "img" / f"{name}.png", rgb(*mask.shape[:2], seed=len(name)))
        (tmp_path / "msk").mkdir(exist_ok=True)
        Image.fromarray(mask).save(tmp_path / "msk" / f"{name}{ending}")


def _convert(tmp_path, masks="msk", **options):
    source = ({k: tmp_path / v for k, v in masks.items()} if isinstance(masks, dict)
              else tmp_path / masks)
    folder, _ = convert_folder(tmp_path / "img", source, 41, "Damage", **QUIET, **options)
    return {p.stem: read_label(p)[0] for p in sorted((folder / "labelsTr").iterdir())}


def _alpha_mask(size=32):
    mask = np.zeros((size, size, 4), np.uint8)
    mask[..., 3] = disc_mask(size, size, 255)
    return mask


def test_masks_drawn_only_in_alpha_are_refused_and_read_with_the_alpha_channel(tmp_path):
    _pairs(tmp_path, {f"c{i}": _alpha_mask() for i in range(3)})
    with pytest.raises(LeafnetError, match=r"only in the alpha channel .*c0\.png.*"
                                           r"--mask-channel 3"):
        _convert(tmp_path)
    labels = _convert(tmp_path, mask_channel=3)
    np.testing.assert_array_equal(labels["c1"], disc_mask(32, 32))


def test_a_chosen_channel_that_is_empty_in_every_file_is_refused(tmp_path):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = disc_mask(32, 32, 255)
    _pairs(tmp_path, {"a": red, "b": red})
    with pytest.raises(LeafnetError, match="not one of the 2 masks has any foreground"):
        _convert(tmp_path, mask_channel=2)


def test_a_label_map_that_erases_the_object_is_refused(tmp_path):
    _pairs(tmp_path, {"a": disc_mask(16, 16, 255), "b": disc_mask(16, 16, 255)})
    with pytest.raises(LeafnetError, match="no foreground or nothing else"):
        _convert(tmp_path, label_map=((0, 0), (255, 0)))


def test_evaluation_refuses_alpha_references_and_names_references_without_objects(
        tmp_path, capsys):
    for name, mask in (("ref", _alpha_mask()), ("pred", disc_mask(32, 32))):
        save(tmp_path / name / "c0.png", mask)
    with pytest.raises(LeafnetError, match="only in the alpha channel"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred")
    save(tmp_path / "ref" / "c0.png", np.zeros((32, 32), np.uint8))
    evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-l", "1"])
    assert "empty in all 1 references" in capsys.readouterr().err
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["notes"] and summary["mean"]["1"]["Dice"] == 0.0


def _three_regions(size=64):
    """0 background, 255 disc, and a 6 x 6 block of 128 (0.9% of the pixels) inside it."""
    mask = disc_mask(size, size, 255)
    mask[29:35, 29:35] = 128
    return mask


def _anti_aliased(size=256):
    """A 0/255 disc whose boundary pixels are 128, as drawing software smooths edges."""
    mask = disc_mask(size, size, 255)
    inside = mask > 0
    edge = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1)
                      & np.roll(inside, -1, 1))
    mask[edge] = 128
    return mask


def test_a_third_value_forming_a_region_is_refused_and_edge_pixels_are_not(tmp_path, capsys):
    _pairs(tmp_path, {f"c{i}": _three_regions() for i in range(3)})
    with pytest.raises(LeafnetError, match=r"form regions of their own in 3 files .*c0\.png"
                                           r".*--label-map 0:0,128:1,255:1"):
        _convert(tmp_path)
    labels = _convert(tmp_path, label_map=((0, 0), (128, 1), (255, 1)))
    assert labels["c0"][31, 31] == 1
    smooth = tmp_path / "smooth"
    _pairs(smooth, {f"c{i}": _anti_aliased() for i in range(3)})
    labels = _convert(smooth, overwrite=True)
    assert "anti-aliased edges" in capsys.readouterr().out
    assert labels["c0"].sum() == (_anti_aliased() >= 128).sum()


def _downscaled_ellipse(seed, size=64):
    """A 0/255 ellipse drawn 4x larger and shrunk with Lanczos: anti-aliased edges whose shades
    (and ringing next to 0 and 255) differ from file to file."""
    rng = np.random.default_rng(seed)
    big = np.zeros((4 * size, 4 * size), np.uint8)
    rows, cols = np.mgrid[:4 * size, :4 * size]
    centre, radii = rng.integers(size, 3 * size, 2), rng.integers(size // 4, size, 2)
    big[((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1] = 255
    return np.asarray(Image.fromarray(big).resize((size, size), Image.Resampling.LANCZOS))


def test_anti_aliased_masks_of_small_images_are_binary_and_stray_values_or_borders_are_not(
        tmp_path, capsys):
    masks = {f"c{i}": _downscaled_ellipse(i) for i in range(6)}
    assert len({frozenset(np.unique(m).tolist()) for m in masks.values()}) == 6
    _pairs(tmp_path, masks)
    labels = _convert(tmp_path)
    assert "on edges (compression noise or anti-aliased edges)" in capsys.readouterr().out
    for name, mask in masks.items():
        np.testing.assert_array_equal(labels[name], mask >= 128)
    speck = masks["c0"].copy()
    speck[0, 0] = 7
    _pairs(tmp_path / "speck", {**masks, "c0": speck})
    with pytest.raises(LeafnetError,
                       match=r"1 lossless files hold values other than.*c0\.png.*--threshold"):
        _convert(tmp_path / "speck")
    bordered = disc_mask(64, 64, 255)
    inside = bordered > 0
    bordered[inside & ~ndimage.binary_erosion(inside, iterations=2)] = 128
    _pairs(tmp_path / "border", {f"c{i}": bordered for i in range(3)})
    with pytest.raises(LeafnetError, match=r"values \{0,128,255\}"):
        _convert(tmp_path / "border")


def _nested_folders(tmp_path, order):
    for index in range(3):
        save(tmp_path / "img" / f"c{index}.png", rgb(48, 48, index))
        disc = disc_mask(48, 48, 255)
        cup = np.zeros((48, 48), np.uint8)
        cup[20:28, 20:28] = 255
        save(tmp_path / "disc" / f"c{index}.png", disc)
        save(tmp_path / "cup" / f"c{index}.png", cup)
    return {name: name for name in order}


def test_nested_masks_in_the_wrong_order_are_refused_naming_the_cases(tmp_path):
    masks = _nested_folders(tmp_path, ("cup", "disc"))
    with pytest.raises(LeafnetError, match=r"in 3 of 3 cases .*c0: \d+% of disc outside cup.*"
                                           r"reverse order.*--masks disc=DIR --masks cup=DIR"):
        _convert(tmp_path, masks=masks, nested=True)
    labels = _convert(tmp_path, masks={"disc": "disc", "cup": "cup"}, nested=True)
    assert set(np.unique(labels["c0"])) == {0, 1, 2}


def test_nested_masks_that_do_not_nest_are_refused(tmp_path):
    _nested_folders(tmp_path, ())
    outside = np.zeros((48, 48), np.uint8)
    outside[:6, :6] = 255
    save(tmp_path / "cup" / "c1.png", outside)
    with pytest.raises(LeafnetError, match=r"in 1 of 3 cases .*c1: 100% of cup outside disc.*"
                                           "outermost first"):
        _convert(tmp_path, masks={"disc": "disc", "cup": "cup"}, nested=True)


@pytest.fixture
def planned(leafnet_folders):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    return plan_and_preprocess(10, **QUIET)


def test_a_splits_file_edited_after_planning_is_refused_by_training(planned):
    path = planned.folder / "splits_final.json"
    splits = json.loads(path.read_text())
    splits["folds"][0]["train"].append(splits["test"][0])
    path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match="edited after planning.*generated_by"):
        find_trainer("LEAFTrainer_x0")(10, show_progress=False)
    splits.pop("generated_by")
    path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match="trains or validates on test cases"):
        find_trainer("LEAFTrainer_x0")(10, show_progress=False)
    fold = splits["folds"][0]
    for broken, message in (
            ({"folds": [{"train": fold["train"], "val": fold["train"][:1]}]}, "validates on 1"),
            ({"folds": [{"train": [], "val": fold["val"]}]}, "no training cases"),
            ({"folds": [{"train": fold["train"] + ["ghost"], "val": []}]}, "do not exist"),
            ({"folds": [{"train": "case00", "val": []}]}, "needs 'train' and 'val' lists")):
        path.write_text(json.dumps(broken))
        with pytest.raises(LeafnetError, match=message):
            find_trainer("LEAFTrainer_x0")(10, show_progress=False)
    path.write_text("")
    with pytest.raises(LeafnetError, match="is not valid JSON"):
        find_trainer("LEAFTrainer_x0")(10, show_progress=False)


def test_official_test_cases_may_not_be_trained_on_in_a_users_splits(tmp_path):
    splits = {"folds": [{"train": ["a", "t"], "val": ["b"]}], "test": []}
    with pytest.raises(LeafnetError, match=r"test cases \['t'\]"):
        check_splits(splits, {"a", "b", "t"}, tmp_path / "splits_final.json", test_ids=["t"])


@pytest.mark.parametrize("damage", ["truncate", "delete_label"])
def test_damaged_arrays_stop_training_before_it_starts_and_are_preprocessed_again(
        planned, damage):
    case = json.loads((planned.folder / "splits_final.json").read_text())["folds"][0]["train"][0]
    data = planned.folder / Plans.load(planned.folder / "leafnet_plans.json").data_identifier
    paths = case_paths(data, case)
    if damage == "truncate":
        paths["image"].write_bytes(paths["image"].read_bytes()[:60])
    else:
        paths["label"].unlink()
    with pytest.raises(LeafnetError, match=rf"cannot be used \({case}: .*nothing was trained"):
        find_trainer("LEAFTrainer_x0")(10, show_progress=False)
    plan_and_preprocess(10, **QUIET)
    assert np.load(paths["image"]).ndim == 3 and paths["label"].is_file()


@pytest.mark.parametrize("entry, message", [
    ({"target_size": [100000, 100000]}, "target size"), ({"target_size": [0, 64]}, "target size"),
    ({"batch_size": 0}, "batch_size 0"), ({"batch_size": -3}, "batch_size -3"),
    ({"batch_size": 100000}, "batch_size 100000")])
def test_absurd_plans_are_refused_when_read(planned, entry, message):
    path = planned.folder / "leafnet_plans.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **entry}))
    with pytest.raises(LeafnetError, match=message):
        Plans.load(path)


def test_zero_steps_cannot_save_an_untrained_first_stage(planned):
    with pytest.raises(LeafnetError, match="--steps must be at least 1"):
        find_trainer("LEAFAutoencoderTrainer")(10, num_steps=0, show_progress=False)


@pytest.mark.parametrize("flags", [["--minutes", "nan"], ["--minutes", "inf"],
                                   ["--minutes", "0"], ["--minutes", "-2"], ["--steps", "0"],
                                   ["--steps", "-5"], ["--validate-every", "0"]])
def test_nonsense_numeric_training_flags_are_one_message(flags, capsys):
    with pytest.raises(SystemExit) as stopped:
        train_main(["10", "LEAFTrainer_x0", *flags])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[0]}" in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["--num_samples", "0"], ["--batch-size", "-1"],
                                   ["--num_seeds", "nan"]])
def test_nonsense_numeric_prediction_flags_are_one_message(flags, capsys, tmp_path):
    from leafnet.inference.cli import main as predict_main

    with pytest.raises(SystemExit) as stopped:
        predict_main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), *flags])
    assert stopped.value.code == 2 and f"argument {flags[0]}" in capsys.readouterr().err


def test_empty_and_oversized_images_in_a_folder_conversion_are_one_message(
        tmp_path, monkeypatch):
    _pairs(tmp_path, {"a": disc_mask(64, 64, 255), "b": disc_mask(64, 64, 255)})
    (tmp_path / "img" / "a.png").write_bytes(b"")
    with pytest.raises(LeafnetError, match=r"a\.png: cannot be read as an image \(an empty file"):
        _convert(tmp_path)
    save(tmp_path / "img" / "a.png", rgb(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(LeafnetError, match="has more pixels than Pillow reads by default"):
        _convert(tmp_path)
