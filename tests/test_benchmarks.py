"""The benchmarks run end to end and write their JSON (speed itself is never asserted)."""

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
    assert set(numbers["seconds_per_image"]) == {"image_encoder", "unet", "decoder",
                                                 "whole_prediction"}
    parts = numbers["parameters"]
    assert parts["inference_network_total"] == (parts["image_encoder"] + parts["unet"]
                                                + parts["autoencoder_frozen"])
