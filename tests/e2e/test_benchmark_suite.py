"""``leafnet_benchmark suite`` on small copies of the three real layouts: converted as
distributed, planned, benchmarked, summarised, and resumed by the same command."""

from __future__ import annotations

import json

import numpy as np
from conftest import disc_mask, rgb, save


def _write_layouts(root):
    """Kvasir-SEG's split folders (JPEG masks), CVC-ClinicDB's images/masks (RGB masks with
    equal channels), the chest X-ray folder (image and mask side by side, x.jpg and x@.png)."""
    for split, count in (("train", 8), ("val", 2), ("test", 3)):
        for index in range(count):
            name = f"k{split}{index:02d}"
            save(root / "kvasir-seg" / split / "images" / f"{name}.jpg", rgb(48, 64, index))
            save(root / "kvasir-seg" / split / "masks" / f"{name}.jpg",
                 np.repeat(disc_mask(48, 64, 255)[..., None], 3, axis=2))
    for index in range(12):
        save(root / "cvc-clinicdb" / "images" / f"{index + 1}.png", rgb(36, 48, index))
        save(root / "cvc-clinicdb" / "masks" / f"{index + 1}.png",
             np.repeat(disc_mask(36, 48, 255)[..., None], 3, axis=2))
    for index in range(12):
        gray = rgb(50, 40, index)[..., 0]
        save(root / "chest-xray-lungs" / f"{index}-x-500.jpg", gray)
        save(root / "chest-xray-lungs" / f"{index}-x-500@.png", disc_mask(50, 40, 255))


def test_the_suite_converts_plans_and_benchmarks_every_dataset_found(tmp_path):
    from leafnet.benchmarks.cli import main as benchmark_main

    data = tmp_path / "data"
    _write_layouts(data)
    folder = tmp_path / "suite"
    arguments = ["suite", "--minutes", "0.04", "--data", str(data), "--rows", "",
                 "-device", "cpu", "-o", str(folder)]
    benchmark_main(arguments)
    report = json.loads((folder / "suite.json").read_text())
    assert [r["dataset"] for r in report["reports"]] == [
        "Dataset005_KvasirSEG", "Dataset002_CVCClinicDB", "Dataset006_ChestXrayLungs"]
    for entry in report["reports"]:
        leafnet = entry["rows"][0]
        assert leafnet["method"] == "leafnet LEAFTrainer_x0_cpu"
        assert 0 <= leafnet["scores"]["Dice"] <= 1 and leafnet["samples_seen"] > 0
        assert set(leafnet["first_stage_ceiling"]) in ({"polyp"}, {"lungs"})
        assert "leafnet_convert" in entry["conversion"] and str(data) in entry["conversion"]
    assert (folder / "raw" / "Dataset006_ChestXrayLungs" / "imagesTr").is_dir()
    table = (folder / "suite.md").read_text()
    assert "| Dataset002_CVCClinicDB | leafnet LEAFTrainer_x0_cpu | 128x128 |" in table
    assert "s / step (wall)" in table
    log = (folder / "chest-xray-lungs" / "leafnet_results" / "Dataset006_ChestXrayLungs"
           / "LEAFTrainer_x0_cpu__leafnetPlans__small" / "fold_0" / "training_log.txt")
    assert "ceiling: the mask autoencoder reconstructs" in log.read_text()

    benchmark_main(arguments)
    again = json.loads((folder / "suite.json").read_text())
    assert [e["rows"][0]["samples_seen"] for e in again["reports"]] == [
        e["rows"][0]["samples_seen"] for e in report["reports"]]


def test_the_suite_names_the_folder_when_no_dataset_is_there(tmp_path):
    import pytest

    from leafnet.benchmarks.suite import run_suite
    from leafnet.errors import LeafnetError

    with pytest.raises(LeafnetError, match="none of the suite's datasets"):
        run_suite(1.0, tmp_path / "empty")
