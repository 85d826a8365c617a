"""versus-nnunet end to end: every row trained for the budget, scored on the same test images
and resumed by the same command (its own module, so that the test-suite workers start it first;
it is the longest test)."""

import json
import sys

import pytest

from leafnet.benchmarks.cli import main as benchmark_main


def test_versus_nnunet_trains_every_row_for_the_budget_and_scores_the_same_test_images(
        leafnet_folders, tmp_path, capsys):
    from leafnet.benchmarks.versus_nnunet import nnunet_available
    from leafnet.dataset_conversion import convert_demo
    from leafnet.imageio import read_image, read_label
    from leafnet.planning import plan_and_preprocess

    # 64 px images planned at 32 px: the rows on leafnet's images map predictions back.
    convert_demo(num_cases=20, size=64, num_processes=1, show_progress=False)
    plan_and_preprocess(999, num_processes=1, preset="tiny", target_size=(32, 32),
                        show_progress=False)
    folder = tmp_path / "versus"
    minutes = 0.04
    arguments = ["versus-nnunet", "-d", "999", "--minutes", str(minutes), "--validate-every",
                 "20", "--mirroring-cases", "2", "-np", "1", "-device", "cpu", "-o",
                 str(folder)]
    benchmark_main(arguments)
    report = json.loads((folder / "versus_nnunet.json").read_text())
    assert report["device"] == "cpu" and report["plans_target_size"] == [32, 32]
    rows = {row["method"]: row for row in report["rows"]}
    leaf = rows["leafnet LEAFTrainer_x0_cpu"]
    unet = rows["plain 2D U-Net (PlainConvUNet, leafnet's loop)"]
    budget = minutes * 60
    for row in (leaf, unet):
        assert budget <= row["train_seconds"] < budget + 20
        assert row["input"] == "32x32" and row["samples_seen"] > 0
        assert 0 <= row["scores"]["Dice"] <= 1 and row["seconds_per_image"] > 0
        assert "HD95" in row["scores"]
    labels = leafnet_folders["LEAFNET_RAW"] / "Dataset999_LeafnetDemo" / "labelsTs"
    tested = sorted(path.name for path in labels.iterdir())
    assert report["num_test_cases"] == len(tested) > 0
    mirrored = rows["leafnet LEAFTrainer_x0_cpu, mirroring"]
    assert mirrored["leafnet"] and mirrored["samples_seen"] == leaf["samples_seen"]
    assert mirrored["seconds_per_image"] > 0 and "HD95" in mirrored["scores"]
    predicted = [(folder / "leafnet_predictions", tested), (folder / "unet_predictions", tested),
                 (folder / "leafnet_mirroring_predictions", tested)]
    if nnunet_available():
        own = rows["nnU-Net v2 2D, its own plans, without mirroring"]
        same = rows["nnU-Net v2 2D, leafnet's images, without mirroring"]
        assert own["input"] == "64x64" and same["input"] == "32x32"
        assert "patch 32x32" in same["training"]
        for row in (own, same):
            assert budget <= row["train_seconds"] < budget + 60 and row["samples_seen"] > 0
        mirrored = rows["nnU-Net v2 2D, leafnet's images, mirroring (first 2 test images)"]
        assert mirrored["seconds_per_image"] > 0
        resized = folder / "nnunet_same_size" / "raw" / "Dataset999_LeafnetDemo"
        image, _ = read_image(next((resized / "imagesTs").iterdir()))
        assert image.shape[1:] == (32, 32)
        for key in ("nnunet", "nnunet_same_size"):
            predicted += [(folder / key / "predictions" / "no_mirroring", tested),
                          (folder / key / "predictions" / "mirroring", tested[:2])]
    else:
        assert "nnunetv2 is not installed" in report["skipped"]["nnU-Net v2 2D, its own plans"]
    for prediction, names in predicted:
        assert sorted(p.name for p in prediction.glob("*.png")) == names
        for name in names:
            assert read_label(prediction / name)[0].shape == read_label(labels / name)[0].shape
    table = (folder / "versus_nnunet.md").read_text()
    assert "| leafnet LEAFTrainer_x0_cpu | 32x32 |" in table and "all on cpu" in table
    assert "samples seen" in table and ("leafnet leads" in table or "does not lead" in table)

    benchmark_main(arguments)
    again = json.loads((folder / "versus_nnunet.json").read_text())
    assert [row["samples_seen"] for row in again["rows"]] == [
        row["samples_seen"] for row in report["rows"]]
    assert again["rows"][0]["scores"] == leaf["scores"]


def test_the_verdict_sets_each_methods_better_row_against_the_others():
    from leafnet.benchmarks.versus_nnunet import verdict

    def row(method, dice, leafnet=False):
        return {"method": method, "scores": {"Dice": dice}, **({"leafnet": True} if leafnet
                                                               else {})}

    report = {"rows": [row("leafnet", 0.80, True), row("leafnet, mirroring", 0.83, True),
                       row("U-Net", 0.82), row("nnU-Net, without mirroring", 0.78),
                       row("nnU-Net, mirroring", 0.81)]}
    leaf, best = verdict(report)
    assert (leaf["method"], best["method"]) == ("leafnet, mirroring", "U-Net")
    report["rows"][4]["scores"]["Dice"] = 0.85
    assert verdict(report)[1]["method"] == "nnU-Net, mirroring"
    # a report written before leafnet's rows were marked: its first row is leafnet's
    old = {"rows": [row("leafnet", 0.80), row("U-Net", 0.79)]}
    assert [r["method"] for r in verdict(old)] == ["leafnet", "U-Net"]
    assert verdict({"rows": [row("leafnet", 0.8, True)]}) is None
    # a row scored on the first test images only (--mirroring-cases) does not decide
    report["num_test_cases"] = 60
    report["rows"][4]["num_cases"] = 2
    assert verdict(report)[1]["method"] == "U-Net"



def test_a_stalled_nnunet_row_is_reported_failed_and_the_table_still_written(
        leafnet_folders, tmp_path, monkeypatch):
    from leafnet.benchmarks import versus_nnunet
    from leafnet.dataset_conversion import convert_demo
    from leafnet.planning import plan_and_preprocess
    from leafnet.utilities.processes import run_watched

    if not versus_nnunet.nnunet_available():
        pytest.skip("nnunetv2 is not installed (pip install -e '.[bench]')")
    convert_demo(num_cases=20, size=64, num_processes=1, show_progress=False)
    plan_and_preprocess(999, num_processes=1, preset="tiny", target_size=(32, 32),
                        show_progress=False)

    def hanging_child(command, log, stall_seconds, **options):
        """The nnU-Net half replaced by a child that prints once and then hangs."""
        code = "import time; print('planning', flush=True); time.sleep(600)"
        return run_watched([sys.executable, "-c", code], log, 1.0, **options)

    monkeypatch.setattr(versus_nnunet, "run_watched", hanging_child)
    folder = tmp_path / "versus"
    benchmark_main(["versus-nnunet", "-d", "999", "--minutes", "0.05", "--rows", "nnunet",
                    "-np", "1", "-device", "cpu", "-o", str(folder)])
    report = json.loads((folder / "versus_nnunet.json").read_text())
    assert [row["method"] for row in report["rows"]][:1] == ["leafnet LEAFTrainer_x0_cpu"]
    reason = report["skipped"]["nnU-Net v2 2D, its own plans"]
    assert reason.startswith("failed: ") and "wrote nothing for" in reason
    assert "nnunet.log" in reason
    table = (folder / "versus_nnunet.md").read_text()
    assert "| nnU-Net v2 2D, its own plans | failed: " in table
