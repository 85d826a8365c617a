"""The benchmarks run end to end and write their JSON (speed itself is never asserted)."""

import importlib.util
import json

from conftest import make_raw_dataset

from leafnet.benchmarks.cli import main as benchmark_main


def test_preprocess_benchmark_writes_its_numbers(leafnet_folders, tmp_path, capsys):
    make_raw_dataset(leafnet_folders["LEAFNET_RAW"], num_cases=6)
    benchmark_main(["preprocess", "-d", "10", "-o", str(tmp_path / "bench.json")])
    numbers = json.loads((tmp_path / "bench.json").read_text())
    assert numbers["cases"] == 6 and numbers["speedup_vs_plain_loop"] > 0
    assert numbers["machine"]["cpu_count"] >= 1
    assert '"command_cases_per_second"' in capsys.readouterr().out
    assert list(leafnet_folders["LEAFNET_PREPROCESSED"].iterdir()) == []


def test_inference_benchmark_writes_its_numbers(tmp_path, capsys):
    benchmark_main(["inference", "--preset", "tiny", "--size", "32", "--repeats", "1",
                    "-o", str(tmp_path / "inference.json")])
    numbers = json.loads((tmp_path / "inference.json").read_text())
    seconds = numbers["seconds_per_image"]
    assert {"image_encoder", "unet", "decoder", "fast_decoder", "whole_prediction",
            "whole_prediction_fast_decoder"} <= set(seconds)
    if importlib.util.find_spec("onnxruntime") is not None:
        assert {"onnxruntime", "onnxruntime_fast_decoder"} <= set(seconds)
        assert max(numbers["onnx_max_abs_difference_vs_torch"].values()) < 1e-4
    if importlib.util.find_spec("nnunetv2") is not None:
        assert {"nnunet_2d", "nnunet_2d_mirroring", "nnunet_predictor",
                "nnunet_predictor_mirroring"} <= set(seconds)
        assert numbers["nnunet_predictor"]["patch_size"] == [32, 32]
        assert numbers["nnunet_predictor"]["mirroring_axes"] == [0, 1]
    assert numbers["speedup_vs_torch"]["whole_prediction_fast_decoder"] > 0
    parts = numbers["parameters"]
    assert parts["inference_network_total"] == (parts["image_encoder"] + parts["unet"]
                                                + parts["autoencoder_frozen"])


def test_versus_nnunet_trains_both_for_the_budget_and_scores_the_same_test_images(
        leafnet_folders, tmp_path, capsys):
    from leafnet.benchmarks.versus_nnunet import nnunet_available
    from leafnet.dataset_conversion import convert_demo
    from leafnet.imageio import read_label
    from leafnet.planning import plan_and_preprocess

    convert_demo(num_cases=30, size=64, num_processes=1, show_progress=False)
    plan_and_preprocess(999, num_processes=1, preset="tiny", target_size=(64, 64),
                        show_progress=False)
    folder = tmp_path / "versus"
    arguments = ["versus-nnunet", "-d", "999", "--minutes", "1", "--validate-every", "20",
                 "--mirroring-cases", "2", "-device", "cpu", "-o", str(folder)]
    benchmark_main(arguments)
    report = json.loads((folder / "versus_nnunet.json").read_text())
    leaf, nnunet = report["leafnet"], report["nnunet"]
    assert report["device"] == "cpu"
    assert leaf["first_stage_steps"] > 0 and leaf["steps"] > 0
    assert 50 < leaf["train_seconds"] < 90
    assert 0 <= leaf["scores"]["Dice"] <= 1 and leaf["seconds_per_image"] > 0
    labels = leafnet_folders["LEAFNET_RAW"] / "Dataset999_LeafnetDemo" / "labelsTs"
    tested = sorted(path.name for path in labels.iterdir())
    assert report["num_test_cases"] == len(tested) > 0
    predicted = [(folder / "leafnet_predictions", tested)]
    if nnunet_available():
        assert nnunet["epochs"] >= 1 and 50 < nnunet["train_seconds"] < 120
        assert set(nnunet["scores"]) == {"mirroring", "no_mirroring"}
        assert report["ratios"]["dice_vs_no_mirroring"] >= 0
        assert nnunet["cases"]["no_mirroring"] == [name[:-4] for name in tested]
        assert nnunet["cases"]["mirroring"] == nnunet["cases"]["no_mirroring"][:2]
        predicted += [(folder / "nnunet" / "predictions" / "no_mirroring", tested),
                      (folder / "nnunet" / "predictions" / "mirroring", tested[:2])]
        assert "mirroring (first 2 test images)" in (folder / "versus_nnunet.md").read_text()
    else:
        assert "nnunetv2 is not installed" in nnunet["skipped"]
    for prediction, names in predicted:
        assert sorted(p.name for p in prediction.glob("*.png")) == names
        for name in names:
            assert read_label(prediction / name)[0].shape == read_label(labels / name)[0].shape
    table = (folder / "versus_nnunet.md").read_text()
    assert "| leafnet LEAFTrainer_x0_cpu |" in table and "nnU-Net v2 2D" in table
    assert "both on cpu" in table

    benchmark_main(arguments)
    again = json.loads((folder / "versus_nnunet.json").read_text())
    assert again["leafnet"]["steps"] == leaf["steps"]
    assert again["leafnet"]["scores"] == leaf["scores"]
    if nnunet_available():
        assert again["nnunet"]["epochs"] == nnunet["epochs"]
