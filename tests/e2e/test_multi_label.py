"""Several labels in one pass: dataset.json regions, planning's label scheme, evaluation per
label and region, and a tiny model trained and predicted on the nested two-label demo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import FOLDER_VARIABLES, save

from leafnet.dataset_conversion import convert_demo
from leafnet.errors import LeafnetError
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.imageio import read_label
from leafnet.inference.cli import main as predict_main
from leafnet.models.autoencoder import mask_to_rgb
from leafnet.planning import plan_and_preprocess
from leafnet.planning.cli import main as plan_main
from leafnet.preprocessing.label_scheme import LabelClass
from leafnet.raw_format import load_dataset_json, write_dataset_json
from leafnet.training.registry import find_trainer
from leafnet.training.losses import soft_dice_loss
from leafnet.training.tasks.autoencoder import rgb_dice_loss

NESTED = 998
DISC, CUP = LabelClass("disc", (1, 2), 1), LabelClass("cup", (2,), 2)


def test_every_label_is_scored_when_missing_from_reference_prediction_or_both(tmp_path):
    cases = {  # name: (reference, prediction)
        "a": ([[1, 1, 2, 2]], [[1, 1, 1, 1]]),  # label 2 missing from the prediction
        "b": ([[1, 1, 0, 0]], [[1, 1, 2, 0]]),  # label 2 missing from the reference
        "c": ([[1, 0, 0, 0]], [[1, 0, 0, 0]]),  # label 2 missing from both
    }
    for name, (reference, prediction) in cases.items():
        save(tmp_path / "ref" / f"{name}.png", np.array(reference, np.uint8))
        save(tmp_path / "pred" / f"{name}.png", np.array(prediction, np.uint8))
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", labels=[1, 2])
    per_case = [case["metrics"] for case in summary.metric_per_case]
    assert [m["2"]["Dice"] for m in per_case] == [0.0, 0.0, 1.0]
    assert [m["1"]["Dice"] for m in per_case] == [pytest.approx(2 * 2 / 6), 1.0, 1.0]
    assert summary.mean["2"]["Dice"] == pytest.approx(1 / 3)
    assert summary.foreground_mean["Dice"] == pytest.approx(
        (summary.mean["1"]["Dice"] + 1 / 3) / 2)
    assert summary.classes["2"].values == [2]

    regions = evaluate_folders(tmp_path / "ref", tmp_path / "pred", classes=[DISC, CUP])
    assert list(regions.mean) == ["(1, 2)", "2"]
    assert regions.classes["(1, 2)"].name == "disc"
    disc = [case["metrics"]["(1, 2)"]["Dice"] for case in regions.metric_per_case]
    assert disc == [1.0, pytest.approx(2 * 2 / 5), 1.0]


def _description_with(folder, labels, **keys):
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    data["labels"] = labels
    data.pop("regions_class_order", None)
    data.update(keys)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("labels, keys, message", [
    ({"background": 0, "disc": [1, 2], "cup": 2}, {},
     "for nested regions, to lists of values with 'regions_class_order'"),
    ({"background": 0, "disc": [1, 2], "cup": 2}, {"regions_class_order": [1]},
     "must list the label value written for each of the 2 regions"),
    ({"background": 0, "disc": [1, 2], "cup": 3}, {"regions_class_order": [1, 2]},
     r"cover label values \[1, 2, 3\] but 'regions_class_order' writes \[1, 2\]"),
    ({"background": 0, "disc": [], "cup": 2}, {"regions_class_order": [1, 2]},
     "region 'disc' must be a label value or a list"),
])
def test_region_keys_of_dataset_json_are_checked(leafnet_folders, labels, keys, message):
    folder, _ = convert_demo(num_cases=10, size=32, num_labels=2, dataset_id=NESTED,
                             num_processes=1, show_progress=False)
    path = _description_with(folder, labels, **keys)
    with pytest.raises(LeafnetError, match=f"{path}: .*{message}"):
        load_dataset_json(folder)


def test_region_datasets_round_trip_through_dataset_json(leafnet_folders):
    folder, _ = convert_demo(num_cases=10, size=32, num_labels=2, dataset_id=NESTED,
                             num_processes=1, show_progress=False)
    description = load_dataset_json(folder)
    assert description.labels == {"background": 0, "lesion": 1, "core": 2}
    assert description.regions == {"lesion": [1, 2], "core": [2]}
    write_dataset_json(folder, description)
    assert load_dataset_json(folder) == description


def test_planning_says_the_scheme_and_trains_a_subset_only_when_asked(leafnet_folders, capsys):
    convert_demo(num_cases=12, size=32, num_labels=2, dataset_id=NESTED, num_processes=1,
                 show_progress=False)
    arguments = ["-d", str(NESTED), "-np", "1", "--preset", "tiny", "--target-size", "32", "32"]
    plan_main(arguments)
    assert ("labels: regions, one mask channel each, painted in this order: lesion = {1, 2} "
            "written as 1, core = {2} written as 2"
            ) in capsys.readouterr().out
    plans_file = (leafnet_folders["LEAFNET_PREPROCESSED"] / "Dataset998_LeafnetDemoNested"
                  / "leafnet_plans.json")
    plan_main(arguments + ["--labels", "core"])
    handling = json.loads(plans_file.read_text())["label_handling"]
    assert handling == {"mode": "regions", "classes": [{"name": "core", "values": [2],
                                                        "write": 2}]}
    plan_main(arguments)
    assert json.loads(plans_file.read_text())["label_handling"] == handling
    with pytest.raises(SystemExit):
        plan_main(arguments + ["--labels", "rim"])
    assert "choose distinct names among lesion, core" in capsys.readouterr().err


def test_more_labels_than_one_latent_codes_are_refused_at_planning(leafnet_folders):
    folder, _ = convert_demo(num_cases=10, size=32, num_processes=1, show_progress=False)
    _description_with(folder, {"background": 0, **{f"kind{v}": v for v in range(1, 9)}})
    with pytest.raises(LeafnetError, match="8 mutually exclusive labels; one mask latent codes "
                                           "at most 7 .* --labels NAME"):
        plan_and_preprocess(999, num_processes=1, preset="tiny", show_progress=False)


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """The nested two-label demo (72 px images, planned at 64 px for the tiny preset) with a
    first stage and an x0 model trained for a few steps."""
    root = tmp_path_factory.mktemp("nested")
    with pytest.MonkeyPatch.context() as patch:
        for variable in FOLDER_VARIABLES:
            patch.setenv(variable, str(root / variable.lower()))
        convert_demo(num_cases=24, size=72, num_labels=2, dataset_id=NESTED, num_processes=1,
                     show_progress=False)
        plan_and_preprocess(NESTED, num_processes=1, preset="tiny", target_size=(64, 64),
                            show_progress=False)
        for name in ("LEAFAutoencoderTrainer", "LEAFTrainer_x0"):
            find_trainer(name)(NESTED, num_steps=3, validate_every=3, num_workers=0,
                               show_progress=False).run()
    return root


@pytest.fixture
def nested_env(nested, monkeypatch, tmp_path):
    for variable in FOLDER_VARIABLES:
        source = nested / variable.lower()
        if variable == "LEAFNET_RAW" or not source.exists():
            monkeypatch.setenv(variable, str(source))
            continue
        shutil.copytree(source, tmp_path / variable.lower(), dirs_exist_ok=True)
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    return tmp_path


def test_a_tiny_model_predicts_every_region_with_its_value_at_original_size(nested_env,
                                                                           nested):
    raw = nested / "leafnet_raw" / "Dataset998_LeafnetDemoNested"
    output = nested_env / "predicted"
    predict_main(["-i", str(raw / "imagesTs"), "-o", str(output), "-d", str(NESTED),
                  "--save_probabilities", "-device", "cpu"])
    predictions = sorted(output.glob("*.png"))
    assert len(predictions) == len(list((raw / "imagesTs").iterdir()))
    for path in predictions:
        label = read_label(path)[0]
        assert label.shape == (72, 72) and set(np.unique(label)) <= {0, 1, 2}
        saved = np.load(path.with_suffix(".npz"))
        assert saved["probabilities"].shape == (2, 72, 72)
        assert list(saved["classes"]) == ["lesion", "core"]
        expected = np.zeros((72, 72), np.uint8)
        expected[saved["probabilities"][0] > 0.5] = 1
        expected[saved["probabilities"][1] > 0.5] = 2
        np.testing.assert_array_equal(label, expected)


def test_the_trainer_scores_each_region_and_their_mean(nested_env):
    folder = (nested_env / "leafnet_results" / "Dataset998_LeafnetDemoNested"
              / "LEAFTrainer_x0__leafnetPlans__tiny" / "fold_0")
    summary = json.loads((folder / "test" / "summary.json").read_text())
    assert list(summary["mean"]) == ["(1, 2)", "2"]
    assert {c["name"] for c in summary["classes"].values()} == {"lesion", "core"}
    assert summary["foreground_mean"]["Dice"] == pytest.approx(
        np.mean([m["Dice"] for m in summary["mean"].values()]))
    first_stage = (nested_env / "leafnet_results" / "Dataset998_LeafnetDemoNested"
                   / "LEAFAutoencoderTrainer__leafnetPlans__tiny" / "fold_0" / "autoencoder")
    coded = json.loads((first_stage / "latent_scale.json").read_text())["label_handling"]
    assert [c["name"] for c in coded["classes"]] == ["lesion", "core"]


def test_soft_dice_loss_is_zero_for_a_perfect_or_empty_mask_and_near_one_for_a_miss():
    mask = torch.zeros(1, 2, 8, 8)
    mask[0, 0, 2:6, 2:6] = 1
    assert soft_dice_loss(mask, mask).item() == pytest.approx(0)
    assert soft_dice_loss(1 - mask[:, :1], mask[:, :1]).item() == pytest.approx(1, abs=0.02)


def test_the_first_stage_dice_counts_the_repeated_inner_region_twice():
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, 1:7, 1:7] = 1
    masks[0, 1, 3:5, 3:5] = 1
    inputs = mask_to_rgb(masks)
    lesion_missed, core_missed = masks.clone(), masks.clone()
    lesion_missed[0, 0] = masks[0, 1]
    core_missed[0, 1] = 0
    lesion_loss = rgb_dice_loss(mask_to_rgb(lesion_missed), inputs).item()
    core_loss = rgb_dice_loss(mask_to_rgb(core_missed), inputs).item()
    assert rgb_dice_loss(inputs, inputs).item() == pytest.approx(0)
    assert core_loss == pytest.approx(2 / 3 * (1 - 1 / 5), abs=1e-6)
    assert core_loss > lesion_loss > 0


def test_a_first_stage_of_several_classes_adds_the_masks_dice_to_its_loss(nested_env):
    folder = (nested_env / "leafnet_results" / "Dataset998_LeafnetDemoNested"
              / "LEAFAutoencoderTrainer__leafnetPlans__tiny" / "fold_0")
    assert ", dice " in (folder / "training_log.txt").read_text()


def test_a_two_class_first_stage_without_the_repeated_spare_channel_is_refused(nested_env):
    record = (nested_env / "leafnet_results" / "Dataset998_LeafnetDemoNested"
              / "LEAFAutoencoderTrainer__leafnetPlans__tiny" / "fold_0" / "autoencoder"
              / "latent_scale.json")
    saved = record.read_text()
    assert json.loads(saved)["rgb_layout"] == [0, 1, 1]
    try:
        record.write_text(json.dumps({k: v for k, v in json.loads(saved).items()
                                      if k != "rgb_layout"}))
        with pytest.raises(LeafnetError, match=r"\[0, 1, -1\] .* not as \[0, 1, 1\]; train it "
                                               "again"):
            find_trainer("LEAFTrainer_x0")(NESTED, num_steps=1, num_workers=0,
                                           show_progress=False).run()
    finally:
        record.write_text(saved)


def test_a_first_stage_trained_on_other_labels_is_refused(nested_env):
    plan_and_preprocess(NESTED, num_processes=1, label_names=["core"], show_progress=False)
    with pytest.raises(LeafnetError, match="trained on other label classes .* train it again"):
        find_trainer("LEAFTrainer_x0")(NESTED, num_steps=1, num_workers=0,
                                       show_progress=False).run()


def test_evaluate_command_scores_the_regions_of_a_dataset_json(leafnet_folders, tmp_path,
                                                               capsys):
    from leafnet.evaluation.cli import main as evaluate_main

    folder, _ = convert_demo(num_cases=10, size=32, num_labels=2, dataset_id=NESTED,
                             num_processes=1, show_progress=False)
    evaluate_main(["-ref", str(folder / "labelsTr"), "-pred", str(folder / "labelsTr"),
                   "-djfile", str(folder / "dataset.json"), "-o", str(tmp_path / "s.json")])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert list(summary["mean"]) == ["(1, 2)", "2"]
    assert "lesion ((1, 2)): Dice 1.0000" in capsys.readouterr().out
