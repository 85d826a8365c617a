"""Planning and preprocessing: fingerprint, plans, splits, resumable preprocessing, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import disc_mask, make_raw_dataset, rgb, save

from leafnet.errors import LeafnetError
from leafnet.imageio import write_image
from leafnet.planning import plan_and_preprocess
from leafnet.planning.cli import main as plan_main
from leafnet.planning.fingerprint import histogram_percentile
from leafnet.planning.splits import make_splits, seeded_order
from leafnet.preprocessing import load_preprocessed_case, resize_label
from leafnet.preprocessing.case_preprocessing import CasePreprocessor

QUIET = dict(num_processes=1, show_progress=False)


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def gray_dataset(root, images, labels, name="Dataset020_Gray", labels_json=None):
    folder = root / name
    (folder / "imagesTr").mkdir(parents=True)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        write_image(folder / "imagesTr" / f"c{index}_0000.png", np.asarray(image)[None])
        save(folder / "labelsTr" / f"c{index}.png", np.asarray(label, np.uint8))
    write_json(folder / "dataset.json", {
        "channel_names": {"0": "gray"},
        "labels": labels_json or {"background": 0, "lesion": 1},
        "numTraining": len(images), "file_ending": ".png",
        "leafnet_split": {"rule": "kfold", "folds": 2}})
    return folder


def test_fingerprint_matches_values_computed_by_hand(leafnet_folders):
    images = [np.array([[0, 10], [20, 30]], np.uint8), np.array([[40] * 3, [50] * 3], np.uint8)]
    labels = [[[0, 1], [1, 0]], [[0, 0, 0], [0, 0, 1]]]
    gray_dataset(leafnet_folders["LEAFNET_RAW"], images, labels)
    result = plan_and_preprocess(20, **QUIET)
    fingerprint = json.loads((result.folder / "dataset_fingerprint.json").read_text())
    assert fingerprint["num_cases"] == {"training": 2, "test": 0}
    assert fingerprint["image_size_hw"] == {"min": [2, 2], "median": [2.0, 2.5], "max": [2, 3]}
    overall = fingerprint["intensity_statistics_per_channel"]["0"]["overall"]
    # all ten pixels: 0 10 20 30 40 40 40 50 50 50
    assert overall["mean"] == pytest.approx(33.0)
    assert overall["std"] == pytest.approx(np.sqrt(13700 / 10 - 33.0**2))  # sum of squares 13700
    assert overall["percentile_00_5"] == pytest.approx(0.45)  # 0 + 0.045 * 10
    assert overall["percentile_99_5"] == pytest.approx(50.0)
    foreground = fingerprint["intensity_statistics_per_channel"]["0"]["foreground"]
    assert foreground["mean"] == pytest.approx(80 / 3)  # pixels 10, 20, 50
    assert (foreground["min"], foreground["max"]) == (10.0, 50.0)
    lesion = fingerprint["labels"]["lesion"]
    assert lesion["pixel_fraction"] == pytest.approx(0.3)
    assert lesion["cases_with_label"] == 2
    assert lesion["mean_fraction_per_case"] == pytest.approx((2 / 4 + 1 / 6) / 2)
    assert result.plans.json["normalisation"]["scheme"] == "rgb8"
    assert result.plans.json["channel_handling"] == "replicate gray to RGB"


def test_sixteen_bit_images_get_a_percentile_window(leafnet_folders):
    images = [np.arange(100, dtype=np.uint16).reshape(10, 10) * 100 for _ in range(2)]
    labels = [disc_mask(10, 10)] * 2
    gray_dataset(leafnet_folders["LEAFNET_RAW"], images, labels)
    result = plan_and_preprocess(20, **QUIET)
    window = result.plans.windows[0]
    assert result.plans.json["normalisation"]["scheme"] == "percentile_clip"
    assert window["lower"] == pytest.approx(np.percentile(np.tile(np.arange(100) * 100, 2), 0.5))
    assert window["upper"] == pytest.approx(np.percentile(np.tile(np.arange(100) * 100, 2), 99.5))
    image = load_preprocessed_case(result.folder / result.plans.data_identifier, "c0").image
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255


def test_ratio_split_has_exact_sizes_and_is_disjoint():
    ids = [f"case{i:03d}" for i in range(100)]
    splits = make_splits(ids, [], {"rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1})
    fold = splits["folds"][0]
    assert (len(fold["train"]), len(fold["val"]), len(splits["test"])) == (80, 10, 10)
    assert not set(fold["train"]) & set(fold["val"])
    assert not (set(fold["train"]) | set(fold["val"])) & set(splits["test"])
    assert set(fold["train"]) | set(fold["val"]) | set(splits["test"]) == set(ids)


def test_isic_ratio_split_keeps_thirty_percent_for_test():
    ids = [f"ISIC_{i:07d}" for i in range(2594)]
    splits = make_splits(ids, [], {"rule": "ratio", "train": 0.63, "val": 0.07, "test": 0.3})
    assert len(splits["test"]) == 778 and len(splits["folds"][0]["val"]) == 182


def test_splits_are_stable_across_runs_machines_and_input_order():
    ids = [f"c{i}" for i in range(10)]
    # The order depends only on SHA-256 digests: these literals hold on every machine.
    assert seeded_order(ids, 12345) == seeded_order(list(reversed(ids)), 12345)
    assert seeded_order(ids, 12345) == ["c9", "c2", "c0", "c5", "c1", "c6", "c4", "c7", "c3",
                                        "c8"]
    assert seeded_order(ids, 1) != seeded_order(ids, 12345)


def test_official_test_and_kfold_rules():
    ids = [f"t{i}" for i in range(20)]
    official = make_splits(ids, ["x1", "x0"], {"rule": "official_test", "val": 0.1})
    assert official["test"] == ["x0", "x1"] and len(official["folds"][0]["val"]) == 2
    named = make_splits(ids, ["x0"], {"rule": "official_test", "val_cases": ["t3"]})
    assert named["folds"][0]["val"] == ["t3"] and "t3" not in named["folds"][0]["train"]
    folds = make_splits(ids, [], {"rule": "kfold", "folds": 5})["folds"]
    assert sorted(case for fold in folds for case in fold["val"]) == sorted(ids)
    assert all(len(fold["val"]) == 4 and len(fold["train"]) == 16 for fold in folds)


def test_user_splits_are_kept_and_checked(leafnet_folders):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    mine = [{"train": ["case00", "case01", "case02"], "val": ["case03"]}]
    path = leafnet_folders["LEAFNET_PREPROCESSED"] / "Dataset010_Toy" / "splits_final.json"
    write_json(path, mine)
    result = plan_and_preprocess(10, **QUIET)
    assert result.user_splits and json.loads(path.read_text()) == mine
    plan_and_preprocess(10, clean=True, **QUIET)
    assert json.loads(path.read_text()) == mine
    write_json(path, [{"train": ["case00", "nope"], "val": []}])
    with pytest.raises(LeafnetError, match="do not exist in the dataset.*nope"):
        plan_and_preprocess(10, **QUIET)


def test_labels_stay_within_declared_values_after_resampling(leafnet_folders):
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (37, 53)) for _ in range(3)]
    images = [rng.integers(0, 255, (37, 53), dtype=np.uint8) for _ in range(3)]
    gray_dataset(leafnet_folders["LEAFNET_RAW"], images, labels,
                 labels_json={"background": 0, "a": 1, "b": 2})
    result = plan_and_preprocess(20, target_size=(64, 48), **QUIET)
    for case in ("c0", "c1", "c2"):
        label = load_preprocessed_case(result.folder / "leafnetPlans_64x48", case).label
        assert label.shape == (64, 48) and set(np.unique(label)) <= {0, 1, 2}


def test_properties_map_a_label_back_to_the_original_size_exactly(leafnet_folders):
    label = np.zeros((100, 150), np.uint8)
    label[20:70, 30:131] = 1
    label[40:45, 5:9] = 1
    gray_dataset(leafnet_folders["LEAFNET_RAW"], [np.full((100, 150), 9, np.uint8)] * 2,
                 [label] * 2)
    result = plan_and_preprocess(20, **QUIET)
    case = load_preprocessed_case(result.folder / "leafnetPlans_256x256", "c0")
    assert case.label.shape == (256, 256)
    restored = resize_label(np.asarray(case.label), tuple(case.properties["original_size_hw"]))
    np.testing.assert_array_equal(restored, label)


def test_interrupted_preprocessing_completes_on_rerun(leafnet_folders):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=8)
    result = plan_and_preprocess(10, **QUIET)
    data = result.folder / result.plans.data_identifier
    (data / "case01.npy").unlink()
    (data / "case02.json").unlink()
    (data / "case03_seg.npy").unlink()
    rerun = plan_and_preprocess(10, **QUIET)
    assert (rerun.processed, rerun.skipped) == (3, 5)
    assert all(load_preprocessed_case(data, f"case{i:02d}").label is not None for i in range(8))


def test_killed_worker_is_reported_and_the_rerun_resumes(leafnet_folders, monkeypatch):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=8)
    original = CasePreprocessor.__call__

    def dies_on_case05(self, item):
        if item[1].case_id == "case05":
            os._exit(1)
        return original(self, item)

    monkeypatch.setattr(CasePreprocessor, "__call__", dies_on_case05)
    with pytest.raises(LeafnetError, match="worker process died"):
        plan_and_preprocess(10, num_processes=2, show_progress=False)
    monkeypatch.setattr(CasePreprocessor, "__call__", original)
    result = plan_and_preprocess(10, num_processes=2, show_progress=False)
    assert result.processed + result.skipped == 8 and result.processed >= 1
    assert plan_and_preprocess(10, **QUIET).processed == 0


def test_second_run_skips_everything_and_changed_plans_reprocess(leafnet_folders):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    first = plan_and_preprocess(10, **QUIET)
    plans_path = first.folder / "leafnet_plans.json"
    plans = json.loads(plans_path.read_text())
    plans["batch_size"] = 2
    plans["normalisation"]["windows"][0]["upper"] = 128.0
    plans_path.write_text(json.dumps(plans))
    second = plan_and_preprocess(10, **QUIET)
    assert second.plans.batch_size == 2 and second.processed == 6
    assert plan_and_preprocess(10, **QUIET).skipped == 6


def test_changed_raw_case_is_reprocessed_and_removed_case_is_dropped(leafnet_folders):
    folder = make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    plan_and_preprocess(10, **QUIET)
    save(folder / "imagesTr" / "case00_0000.png", rgb(24, 32, seed=99))
    os.utime(folder / "imagesTr" / "case00_0000.png", ns=(1, 1))
    (folder / "imagesTr" / "case05_0000.png").unlink()
    (folder / "labelsTr" / "case05.png").unlink()
    data = json.loads((folder / "dataset.json").read_text())
    data["numTraining"] = 5
    (folder / "dataset.json").write_text(json.dumps(data))
    result = plan_and_preprocess(10, **QUIET)
    assert (result.processed, result.skipped, result.removed) == (1, 4, 1)


def test_dataset_failing_verification_is_never_preprocessed(leafnet_folders):
    folder = make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    save(folder / "labelsTr" / "case00.png", disc_mask(24, 32, foreground=255))
    with pytest.raises(LeafnetError, match="failed the integrity check"):
        plan_and_preprocess(10, **QUIET)
    assert list(leafnet_folders["LEAFNET_PREPROCESSED"].iterdir()) == []


def test_planning_before_converting_names_the_folder_and_the_command(leafnet_folders, capsys):
    with pytest.raises(SystemExit):
        plan_main(["-d", "3"])
    error = capsys.readouterr().err
    assert str(leafnet_folders["LEAFNET_RAW"]) in error and "leafnet_convert" in error
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    with pytest.raises(SystemExit):
        plan_main(["-d", "3"])
    assert "datasets found there: Dataset010_Toy" in capsys.readouterr().err


def test_cli_reports_what_it_wrote(leafnet_folders, capsys):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=10)
    plan_main(["-d", "10", "-np", "1", "--preset", "tiny", "--target-size", "32", "32"])
    output = capsys.readouterr().out
    assert "10 cases preprocessed, 0 already up to date" in output
    assert "fold 0 has 6 train / 2 val, 2 test" in output and "preset tiny" in output
    preprocessed = leafnet_folders["LEAFNET_PREPROCESSED"] / "Dataset010_Toy"
    assert sorted(p.name for p in preprocessed.iterdir()) == [
        "dataset.json", "dataset_fingerprint.json", "leafnetPlans_32x32", "leafnet_plans.json",
        "splits_final.json"]


@pytest.mark.parametrize("percentile", [0, 0.5, 37.2, 50, 99.5, 100])
def test_histogram_percentiles_equal_numpy(percentile):
    values = np.random.default_rng(1).integers(0, 256, 1001).astype(np.uint8)
    histogram = np.bincount(values, minlength=256)
    assert histogram_percentile(histogram, percentile) == pytest.approx(
        np.percentile(values, percentile))


def test_target_size_follows_the_preset_unless_given(leafnet_folders):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"])
    assert plan_and_preprocess(10, preset="small", **QUIET).plans.target_size == (128, 128)
    assert plan_and_preprocess(10, **QUIET).plans.target_size == (128, 128)
    switched = plan_and_preprocess(10, preset="paper", **QUIET)
    assert switched.plans.target_size == (256, 256) and switched.processed == 6
    given = plan_and_preprocess(10, preset="small", target_size=(64, 64), **QUIET)
    assert given.plans.target_size == (64, 64) and given.plans.preset == "small"


def test_fingerprint_measures_each_labels_largest_object(leafnet_folders):
    images, labels = [], []
    for index in range(4):
        label = np.zeros((40, 80), np.uint8)
        label[2:12, 3:23] = 1           # 10 x 20, the largest piece of label 1
        label[30:33, 60:63] = 1         # a speck that must not count
        label[20:20 + 4 + index, 40:46] = 2
        images.append(np.full((40, 80), 100, np.uint8))
        labels.append(label)
    gray_dataset(leafnet_folders["LEAFNET_RAW"], images, labels,
                 labels_json={"background": 0, "big": 1, "small": 2})
    result = plan_and_preprocess(20, preset="small", target_size=(64, 64), **QUIET)
    fingerprint = json.loads((result.folder / "dataset_fingerprint.json").read_text())
    big, small = fingerprint["labels"]["big"], fingerprint["labels"]["small"]
    assert big["object_extent_hw_median"] == [10, 20]
    assert big["object_fraction_hw_median"] == [0.25, 0.25]
    assert small["object_extent_hw_median"] == [5.5, 6]
    structure = fingerprint["foreground_structure"]
    assert structure["object_extent_hw_median"] == [10, 20]
    assert structure["single_structure_case_fraction"] == 0.0   # 200 of 233-251 pixels
    assert "given with --target-size" in result.plans.json["target_size_rule"]["decision"]


def test_a_structure_too_small_for_any_allowed_size_gets_the_largest_and_a_warning():
    from leafnet.planning.target_size import MIN_OBJECT_PIXELS, choose_target_size
    from leafnet.preprocessing.label_scheme import LabelScheme

    labels, regions = {"background": 0, "disc": 1, "cup": 2}, {"disc": [1, 2], "cup": [2]}
    scheme = LabelScheme.for_dataset(labels, regions)
    fingerprint = {"labels": {
        "disc": {"value": 1, "object_fraction_hw_median": [0.2, 0.15]},
        "cup": {"value": 2, "object_fraction_hw_median": [0.02, 0.03]}}}
    decision = choose_target_size(fingerprint, scheme, (128, 128))
    assert decision.target_size == (256, 256) and decision.smallest_class == "cup"
    assert decision.extent_at_target == pytest.approx(5.1)
    assert decision.extent_at_target < MIN_OBJECT_PIXELS
    assert "still 5.1 px at 256x256" in decision.explanation()
    fits = choose_target_size(fingerprint, LabelScheme.for_dataset(labels, regions, ["disc"]),
                              (128, 128))
    assert fits.target_size == (128, 128) and fits.extent_at_preset == pytest.approx(19.2)


def test_plans_by_measured_ceiling_keep_the_demo_and_enlarge_the_nested_demos_small_core(
        leafnet_folders):
    """The demo's blobs survive 128 px (ceiling 0.99); the nested demo's cores lose 2.5 points
    to the resizing alone there (under 0.98), and 256 px keeps them."""
    from leafnet.dataset_conversion import convert_demo

    convert_demo(num_cases=20, size=256, num_processes=1, show_progress=False)
    convert_demo(dataset_id=998, num_cases=20, size=256, num_processes=1, show_progress=False,
                 num_labels=2)
    demo = plan_and_preprocess(999, preset="small", **QUIET).plans
    assert demo.target_size == (128, 128), demo.json["target_size_rule"]
    rule = demo.json["target_size_rule"]
    assert rule["rule"].startswith("measured ceiling") and "<- chosen" in rule["table"]
    assert rule["candidates"][0]["ceiling_dice"]["polyp"] >= 0.98
    nested = plan_and_preprocess(998, preset="small", **QUIET).plans
    rule = nested.json["target_size_rule"]
    assert nested.target_size == (256, 256), rule
    assert rule["candidates"][0]["resize_only_dice"]["core"] < 0.98
