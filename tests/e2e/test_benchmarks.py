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


def test_versus_nnunet_refuses_an_unknown_row(leafnet_folders, capsys):
    import pytest

    with pytest.raises(SystemExit):
        benchmark_main(["versus-nnunet", "-d", "999", "--minutes", "1", "--rows", "unet,swin"])
    assert "unknown row(s) swin" in capsys.readouterr().err
