"""Prediction and evaluation with a tiny model trained for a few steps on the demo data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from conftest import disc_mask, planned_tiny_demo, rgb, save

from leafnet.errors import LeafnetError
from leafnet.evaluation.cli import main as evaluate_main
from leafnet.evaluation.evaluate import evaluate_folders, hd95, surface
from leafnet.imageio import read_image, read_label, write_image
from leafnet.inference.cli import main as predict_main
from leafnet.model_store.discovery import find_model
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.predictor import LEAFPredictor
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.preprocessing.plans import Plans
from leafnet.training.registry import find_trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    with planned_tiny_demo(root, num_cases=20):
        for name in ("LEAFAutoencoderTrainer", "LEAFTrainer_x0"):
            find_trainer(name)(999, num_steps=3, num_workers=0, show_progress=False).run()
    return root


@pytest.fixture
def results(trained, monkeypatch, tmp_path):
    shutil.copytree(trained / "leafnet_results", tmp_path / "results")
    monkeypatch.setenv("LEAFNET_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_pngs_of_several_sizes_keep_their_sizes_and_label_values(results, tmp_path):
    for index, (height, width) in enumerate([(64, 64), (50, 90), (120, 33)]):
        save(tmp_path / "in" / f"case{index}_0000.png", rgb(height, width, index))
    predictor = LEAFPredictor.from_folder(find_model())
    result = predict_folder(predictor, tmp_path / "in", tmp_path / "out", show_progress=False)
    assert len(result.written) == 3 and not result.failed
    for index, (height, width) in enumerate([(64, 64), (50, 90), (120, 33)]):
        label, _ = read_label(tmp_path / "out" / f"case{index}.png")
        assert label.shape == (height, width) and set(np.unique(label)) <= {0, 1}


def test_nifti_input_keeps_its_geometry(results, tmp_path):
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "scan.nii.gz", np.moveaxis(rgb(40, 48), -1, 0))
    image = sitk.ReadImage(str(tmp_path / "in" / "scan.nii.gz"))
    image.SetSpacing((0.7, 0.3))
    image.SetOrigin((5.0, -2.0))
    sitk.WriteImage(image, str(tmp_path / "in" / "scan.nii.gz"))
    predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-device", "cpu"])
    written = sitk.ReadImage(str(tmp_path / "out" / "scan.nii.gz"))
    assert written.GetSize() == (48, 40)
    assert written.GetSpacing() == pytest.approx((0.7, 0.3))
    assert written.GetOrigin() == pytest.approx((5.0, -2.0))


def test_in_memory_api_equals_the_command_and_seeds_reproduce(results, tmp_path):
    save(tmp_path / "in" / "a.jpg", rgb(70, 60, 4))
    predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--seed", "7",
                  "--save_probabilities", "-device", "cpu"])
    image, _ = read_image(tmp_path / "in" / "a.jpg")
    predictor = LEAFPredictor.from_folder(find_model())
    in_memory = predictor.predict([image], seed=7)[0]
    np.testing.assert_array_equal(read_label(tmp_path / "out" / "a.png")[0], in_memory.label)
    saved = np.load(tmp_path / "out" / "a.npz")["probabilities"]
    np.testing.assert_allclose(saved, in_memory.probability, atol=1e-6)
    again = predictor.predict([image, image], seed=7)
    np.testing.assert_allclose(again[1].probability, in_memory.probability, atol=1e-5)
    other = predictor.predict([image], seed=8)[0]
    assert not np.allclose(other.probability, in_memory.probability)


def test_mirroring_by_the_command_equals_the_api(results, tmp_path, capsys):
    save(tmp_path / "in" / "a.png", rgb(70, 60, 5))
    predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--mirroring",
                  "--save_probabilities", "-device", "cpu"])
    assert "test-time mirroring" in capsys.readouterr().out
    image, _ = read_image(tmp_path / "in" / "a.png")
    saved = np.load(tmp_path / "out" / "a.npz")["probabilities"]
    mirrored = LEAFPredictor.from_folder(find_model(), mirroring=True).predict([image])[0]
    np.testing.assert_allclose(saved, mirrored.probability, atol=1e-6)
    plain = LEAFPredictor.from_folder(find_model()).predict([image])[0]
    assert not np.allclose(saved, plain.probability, atol=1e-4)


def test_mirroring_flips_each_view_back_before_averaging():
    class Corner(torch.nn.Module):
        """Marks the top-left quarter whatever the image: not mirror-symmetric."""

        def latent_shape(self, image_shape):
            return (image_shape[0], 4, image_shape[2] // 8, image_shape[3] // 8)

        def forward(self, image, noise):
            out = torch.zeros(image.shape[0], 1, *image.shape[2:])
            out[:, :, :32, :32] = 1.0
            return out

    plans = Plans.from_json({
        "data_identifier": "x", "target_size": [64, 64], "num_channels": 1,
        "normalisation": {"windows": [{"lower": 0, "upper": 255}]},
        "labels": {"background": 0, "spot": 1},
        "label_handling": LabelScheme.for_dataset({"background": 0, "spot": 1}).to_json(),
        "batch_size": 2, "preset": "tiny"}, "test plans")
    image = np.zeros((1, 64, 64), np.uint8)
    assert LEAFPredictor(Corner(), plans).predict([image])[0].label[:32, :32].all()
    mirrored = LEAFPredictor(Corner(), plans, mirroring=True).predict([image])[0]
    # each view marks its own corner once flipped back: a quarter of the votes everywhere
    np.testing.assert_allclose(mirrored.probability[-1], 0.25, atol=1e-6)
    assert not mirrored.label.any()


def test_corrupt_input_is_reported_and_the_rest_predicted(results, tmp_path, capsys):
    save(tmp_path / "in" / "good.png", rgb(32, 32))
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit) as exited:
        predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-device", "cpu"])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert "bad: " in error and "bad.png" in error and "1 of 2 inputs" in error
    assert (tmp_path / "out" / "good.png").is_file()
    (tmp_path / "in" / "bad.png").unlink()
    predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--continue",
                  "-device", "cpu"])
    assert "0 predicted, 1 skipped (already there)" in capsys.readouterr().out


def test_continue_predicts_again_what_is_missing_or_was_made_by_another_model(results, tmp_path,
                                                                              capsys):
    for name in ("a", "b"):
        save(tmp_path / "in" / f"{name}.png", rgb(32, 32))
    command = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--continue",
               "--save_probabilities", "-device", "cpu"]
    predict_main(command)
    assert "2 predicted, 0 skipped" in capsys.readouterr().out
    (tmp_path / "out" / "a.npz").unlink()               # its label is there, its .npz not
    predict_main(command)
    assert "1 predicted, 1 skipped" in capsys.readouterr().out
    record = tmp_path / "out" / "prediction_record.json"
    other = json.loads(record.read_text())
    other["models"] = {key: "0" * 16 for key in other["models"]}   # a model since retrained
    record.write_text(json.dumps(other))
    predict_main(command)
    printed = capsys.readouterr().out
    assert "made by another model or other settings" in printed
    assert "2 predicted, 0 skipped" in printed


def test_output_over_the_inputs_or_a_file_is_refused(results, tmp_path):
    save(tmp_path / "in" / "a.png", rgb(32, 32))
    before = (tmp_path / "in" / "a.png").read_bytes()
    with pytest.raises(LeafnetError, match="is the input folder"):
        predict_folder(LEAFPredictor.from_folder(find_model()), tmp_path / "in",
                       tmp_path / "in" / ".." / "in", show_progress=False)
    assert (tmp_path / "in" / "a.png").read_bytes() == before
    # raw names: CASE_0000.png in, CASE.png out would not overwrite an image, but would land
    # among them and be read as a case of its own by every later run on the folder
    save(tmp_path / "raw" / "case_0000.png", rgb(32, 32))
    with pytest.raises(LeafnetError, match="is the input folder"):
        predict_folder(LEAFPredictor.from_folder(find_model()), tmp_path / "raw",
                       tmp_path / "raw", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["case_0000.png"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(LeafnetError, match="is a file"):
        predict_folder(LEAFPredictor.from_folder(find_model()), tmp_path / "in",
                       tmp_path / "file", show_progress=False)


def test_channel_files_are_grouped_only_in_the_raw_naming(results, tmp_path):
    for name in ("scan_0032", "scan_0033", "raw_0000", "plain"):
        save(tmp_path / "in" / f"{name}.png", rgb(32, 32))
    result = predict_folder(LEAFPredictor.from_folder(find_model()), tmp_path / "in",
                            tmp_path / "out", show_progress=False)
    assert not result.failed
    assert sorted(p.name for p in result.written) == ["plain.png", "raw.png", "scan_0032.png",
                                                      "scan_0033.png"]


def test_prediction_needs_no_training_pickle(results, tmp_path):
    folder = find_model()
    for checkpoint in folder.glob("*.pth"):
        checkpoint.unlink()
    save(tmp_path / "in" / "a_0000.png", rgb(32, 32))
    result = predict_folder(LEAFPredictor.from_folder(folder), tmp_path / "in", tmp_path / "out",
                            show_progress=False)
    assert [p.name for p in result.written] == ["a.png"]


def test_model_discovery_lists_candidates(results):
    second = results / "Dataset999_LeafnetDemo" / "LEAFTrainer_v__leafnetPlans__tiny"
    shutil.copytree(results / "Dataset999_LeafnetDemo" / "LEAFTrainer_x0__leafnetPlans__tiny",
                    second)
    with pytest.raises(LeafnetError, match="2 trained models match") as raised:
        find_model()
    assert "-tr LEAFTrainer_v" in str(raised.value) and "-tr LEAFTrainer_x0" in str(raised.value)
    assert find_model(trainer="LEAFTrainer_v").parent == second
    with pytest.raises(LeafnetError, match="no trained model matches"):
        find_model(dataset="5")


def test_metrics_on_hand_made_masks_including_empty_cases(tmp_path):
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    square = np.zeros((10, 10), np.uint8)
    square[2:6, 2:6] = 1
    shifted = np.zeros((10, 10), np.uint8)
    shifted[2:6, 4:8] = 1
    save(reference / "a.png", square)
    save(prediction / "a.png", shifted)
    save(reference / "b.png", np.zeros((10, 10), np.uint8))
    save(prediction / "b.png", np.zeros((10, 10), np.uint8))
    save(reference / "c.png", np.zeros((10, 10), np.uint8))
    save(prediction / "c.png", square)
    summary = evaluate_folders(reference, prediction, with_hd95=True)
    per_case = {json.dumps(c["reference_file"])[-7:-1]: c["metrics"]["1"]
                for c in summary.metric_per_case}
    assert per_case["/a.png"]["Dice"] == pytest.approx(0.5)  # 8 shared of 16 + 16
    assert per_case["/a.png"]["IoU"] == pytest.approx(8 / 24)
    assert per_case["/a.png"]["HD95"] == pytest.approx(2.0)
    assert per_case["/b.png"]["Dice"] == 1.0 and np.isnan(per_case["/b.png"]["HD95"])
    assert per_case["/c.png"]["Dice"] == 0.0
    assert summary.mean["1"]["Dice"] == pytest.approx(0.5)
    assert summary.foreground_mean["IoU"] == pytest.approx((8 / 24 + 1 + 0) / 3)
    assert "empty" in summary.empty_reference_convention


def test_hd95_of_identical_masks_is_zero():
    assert hd95(disc_mask(20, 20) > 0, disc_mask(20, 20) > 0) == 0.0


def test_surface_is_the_object_minus_its_erosion_and_includes_pixels_on_the_image_edge():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((12, 15)) < 0.6
        assert np.array_equal(surface(mask), mask & ~ndimage.binary_erosion(mask))
    full = np.ones((4, 5), dtype=bool)
    assert surface(full).sum() == 14
    assert hd95(full, np.pad(np.ones((2, 3), dtype=bool), 1)) == pytest.approx(2 ** 0.5)


def test_evaluate_command_writes_summary(tmp_path, capsys):
    save(tmp_path / "ref" / "a.png", disc_mask(16, 16))
    save(tmp_path / "pred" / "a.png", disc_mask(16, 16))
    evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred")])
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["foreground_mean"]["Dice"] == 1.0
    assert "1 cases: Dice 1.0000" in capsys.readouterr().out


def test_a_summary_file_reads_back_as_the_summary_written_and_older_files_read_too(tmp_path):
    from leafnet.evaluation.summary import Summary

    save(tmp_path / "ref" / "a.png", disc_mask(16, 16))
    save(tmp_path / "pred" / "a.png", disc_mask(16, 16))
    written = evaluate_folders(tmp_path / "ref", tmp_path / "pred")
    written.save(tmp_path / "out" / "summary.json")
    assert Summary.load(tmp_path / "out" / "summary.json") == written
    assert written.name_of("1") == "1" and written.means_by_name()["1"]["Dice"] == 1.0
    older = json.loads((tmp_path / "out" / "summary.json").read_text())
    del older["classes"], older["notes"]
    assert Summary.from_json(older, "older").classes["1"].values == [1]
    with pytest.raises(LeafnetError, match="broken: not an evaluation summary"):
        Summary.from_json({"mean": {}}, "broken")
    assert Summary.load(tmp_path / "none.json") is None


def test_evaluation_reads_masks_by_the_converters_rules(tmp_path, capsys):
    save(tmp_path / "ref" / "a_lesion.png", disc_mask(16, 16, foreground=255))
    save(tmp_path / "ref" / "b_lesion.png", disc_mask(16, 16, foreground=255))
    save(tmp_path / "pred" / "a.png", disc_mask(16, 16))
    save(tmp_path / "pred" / "b.png", np.zeros((16, 16), np.uint8))
    evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                   "--ref-suffix", "_lesion"])
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert list(summary["mean"]) == ["1"]
    assert summary["foreground_mean"]["Dice"] == pytest.approx(0.5)
    assert "reference masks: values {0,255} in 2 files" in capsys.readouterr().out


def test_false_positives_of_a_label_missing_from_a_reference_count(tmp_path):
    save(tmp_path / "ref" / "a.png", disc_mask(16, 16))
    predicted = disc_mask(16, 16)
    predicted[0, :4] = 2
    save(tmp_path / "pred" / "a.png", predicted)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred")
    assert summary.mean["2"]["Dice"] == 0.0
    with pytest.raises(LeafnetError, match=r"label values \[2\] outside the evaluated labels"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred", labels=[1])


def test_zero_cases_and_ambiguous_masks_are_errors(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(LeafnetError, match="no reference masks"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred")
    three = disc_mask(16, 16, foreground=255)
    three[0, 0] = 128
    for name in ("a", "b"):
        save(tmp_path / "ref" / f"{name}.png", disc_mask(16, 16, foreground=255))
        save(tmp_path / "pred" / f"{name}.png", disc_mask(16, 16))
    save(tmp_path / "ref" / "c.png", three)
    save(tmp_path / "pred" / "c.png", disc_mask(16, 16))
    with pytest.raises(LeafnetError, match=r"c\.png"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred")


def test_overlays_show_the_worst_and_best_cases(tmp_path, capsys):
    for index in range(4):
        save(tmp_path / "img" / f"c{index}_0000.png", rgb(24, 24, index))
        save(tmp_path / "ref" / f"c{index}.png", disc_mask(24, 24))
        prediction = np.roll(disc_mask(24, 24), index * 2, axis=1)
        save(tmp_path / "pred" / f"c{index}.png", prediction)
    evaluate_main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                   "--overlays", str(tmp_path / "overlays"), "--images", str(tmp_path / "img")])
    names = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert names[0].startswith("best_c0") and "worst_c3.png" in names and len(names) == 6


def test_trainer_writes_validation_and_test_summaries(results):
    folder = find_model()
    for split in ("validation", "test"):
        summary = json.loads((folder / split / "summary.json").read_text())
        assert summary["num_cases"] >= 1 and 0 <= summary["foreground_mean"]["Dice"] <= 1
    first = summary["metric_per_case"][0]
    assert read_label(first["prediction_file"])[0].shape == read_label(
        first["reference_file"])[0].shape


def test_stability_over_seeds(results, trained, tmp_path, capsys):
    raw = trained / "leafnet_raw" / "Dataset999_LeafnetDemo"
    predict_main(["-i", str(raw / "imagesTs"), "-o", str(tmp_path / "stab"), "--num_seeds", "3",
                  "-ref", str(raw / "labelsTs"), "-device", "cpu"])
    numbers = json.loads((tmp_path / "stab" / "stability.json").read_text())
    assert numbers["seeds"] == [0, 1, 2] and numbers["Dice_std"] >= 0
    assert numbers["num_cases"] == len(list((raw / "labelsTs").iterdir()))
    assert set(numbers["per_class"]) == {"polyp"} and numbers["per_class"]["polyp"]["IoU"] > 0
    for seed in ("0", "1", "2"):
        assert numbers["per_seed"][seed]["Dice"] == json.loads(
            (tmp_path / "stab" / f"seed_{seed}" / "summary.json").read_text()
        )["foreground_mean"]["Dice"]
    assert "mean Dice over 3 seeds" in capsys.readouterr().out
    # a reference folder that misses an image's mask is refused, naming the case
    partial = tmp_path / "partial"
    partial.mkdir()
    masks = sorted((raw / "labelsTs").iterdir())
    for mask in masks[1:]:
        (partial / mask.name).write_bytes(mask.read_bytes())
    with pytest.raises(SystemExit):
        predict_main(["-i", str(raw / "imagesTs"), "-o", str(tmp_path / "stab2"),
                      "--num_seeds", "2", "-ref", str(partial), "-device", "cpu"])
    assert "case(s) are in only one of" in capsys.readouterr().err
