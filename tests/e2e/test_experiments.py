"""leafnet_experiment on the tiny preset with a handful of steps: rows trained through the real
trainers, skipped without teacher weights, reused on the next call, continued to more steps,
scored with several noise seeds, and written as Markdown, CSV, JSON and a plot."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import planned_tiny_demo, point_folders_at
from tiny_teachers import install_tiny_teachers

from leafnet.errors import LeafnetError
from leafnet.experiments import scoring
from leafnet.experiments.cli import main as experiment_main
from leafnet.experiments.experiment import run_experiment
from leafnet.experiments.runs import RunSettings
from leafnet.imageio import read_label
from leafnet.training.trainers.base import LEAFTrainer

STEPS = 3


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Demo dataset (30 cases, 64 px) planned for the tiny preset; nothing trained yet."""
    root = tmp_path_factory.mktemp("experiments")
    with planned_tiny_demo(root, num_cases=30):
        return root


@pytest.fixture
def env(folders, monkeypatch):
    return point_folders_at(folders, monkeypatch)


def settings(steps: int = STEPS, validate_every: int = 1) -> RunSettings:
    """Validation after every step where a test reads the curve; the tables that only train
    their rows validate once, at the end (an interval costs more than a step here)."""
    return RunSettings(999, steps=steps, validate_every=validate_every, first_stage_steps=5,
                       show_progress=False)


def test_parameterization_table_measures_rows_and_skips_rows_without_teacher(env, capsys):
    experiment_main(["parameterization", "-d", "999", "--steps", str(STEPS), "--validate-every",
                     "1", "--first-stage-steps", "5"])
    printed = capsys.readouterr().out
    folder = (env / "leafnet_results" / "Dataset999_LeafnetDemo" / "experiments"
              / f"parameterization__leafnetPlans__tiny__{STEPS}steps__fold_0")
    result = json.loads((folder / "parameterization.json").read_text())
    by_trainer = {row["trainer"]: row for row in result["rows"]}
    assert list(by_trainer) == ["LEAFTrainer_eps", "LEAFTrainer_eps_distill", "LEAFTrainer_v",
                                "LEAFTrainer_v_distill", "LEAFTrainer_x0",
                                "LEAFTrainer_x0_distill"]
    for name, row in by_trainer.items():
        if name.endswith("_distill"):
            assert row["status"] == "skipped"
            assert "leafnet_weights fetch dinov2-vitb14-reg" in row["reason"]
            assert "test" not in row
            continue
        assert row["status"] == "trained"
        assert row["steps"] == STEPS
        assert row["validation"]["step"] == [1, 2, 3]
        assert 0 <= row["test"]["Dice"] <= 1 and 0 <= row["test"]["IoU"] <= 1
        summary = folder / "test" / name / "seed_0" / "summary.json"
        assert json.loads(summary.read_text())["num_cases"] == result["num_test_cases"] > 0
    with open(folder / "parameterization.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["prediction"] for r in table] == ["eps", "eps", "v", "v", "x0", "x0"]
    x0 = next(r for r in table if r["trainer"] == "LEAFTrainer_x0")
    assert float(x0["Dice (%)"]) == pytest.approx(100 * by_trainer["LEAFTrainer_x0"]["test"]
                                                  ["Dice"], abs=0.005)
    markdown = (folder / "parameterization.md").read_text()
    assert "| prediction | feature alignment | Dice (%) | IoU (%) | status |" in markdown
    assert markdown.count("skipped: needs the dinov2-vitb14-reg teacher weights") == 3
    assert markdown in printed
    floor = result["all_foreground_reference"]
    raw = env / "leafnet_raw" / "Dataset999_LeafnetDemo"
    test_ids = json.loads((env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo"
                           / "splits_final.json").read_text())["test"]
    truths = [read_label(raw / folder / f"{case}.png")[0] for case in test_ids
              for folder in ("labelsTr", "labelsTs") if (raw / folder / f"{case}.png").is_file()]
    fractions = [float((truth > 0).mean()) for truth in truths]
    assert len(truths) == result["num_test_cases"]
    assert floor["Dice"] == pytest.approx(np.mean([2 * f / (1 + f) for f in fractions]))
    assert floor["IoU"] == pytest.approx(np.mean(fractions))
    assert f"marking every pixel foreground scores Dice {100 * floor['Dice']:.2f}" in markdown
    assert (folder / "parameterization_validation_dice.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_call_reuses_runs_and_predictions(env, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run or prediction was redone")

    monkeypatch.setattr(LEAFTrainer, "run", refuse)
    monkeypatch.setattr(scoring, "predict_and_score", refuse)
    result = run_experiment("parameterization", settings())
    assert {row["status"] for row in result["rows"]} == {"reused", "skipped"}


def test_stability_reports_the_std_of_the_per_seed_mean_dice(env):
    result = run_experiment("stability", settings(), seeds=3)
    assert [row["trainer"] for row in result["rows"]] == ["LEAFTrainer_eps", "LEAFTrainer_x0"]
    for row in result["rows"]:
        assert row["status"] == "reused"
        per_seed = [row["test"]["per_seed"][str(s)]["Dice"] for s in range(3)]
        assert row["test"]["Dice"] == pytest.approx(np.mean(per_seed))
        assert row["test"]["Dice_std"] == pytest.approx(np.std(per_seed, ddof=1))
    markdown = open(result["files"]["markdown"]).read()
    assert "Dice std over seeds (%)" in markdown and "noise seed(s) 0, 1, 2" in markdown


def test_variants_table_shares_the_x0_run_and_trains_each_variant(env):
    result = run_experiment("variants", settings(validate_every=STEPS))
    rows = result["rows"]
    assert [row["trainer"] for row in rows] == [
        "LEAFTrainer_x0", "LEAFTrainer_x0_tlast", "LEAFTrainer_x0_ttop10", "LEAFTrainer_x0_tmix",
        "LEAFTrainer_x0_pixel", "LEAFTrainer_x0_cpu"]
    assert [row["status"] for row in rows] == ["reused"] + ["trained"] * 5
    assert all(row["steps"] == STEPS and 0 <= row["test"]["Dice"] <= 1 for row in rows)
    markdown = open(result["files"]["markdown"]).read()
    assert "| training timesteps | extra | Dice (%) |" in markdown


def test_lambda_table_runs_the_distill_rows_once_teacher_weights_are_installed(env):
    install_tiny_teachers(env)
    result = run_experiment("lambda", settings(validate_every=STEPS))
    rows = result["rows"]
    assert [row["labels"]["lambda"] for row in rows] == ["0", "0.15", "0.25", "0.5", "0.75",
                                                         "1", "1.25"]
    assert rows[0]["trainer"] == "LEAFTrainer_x0"
    assert [row["trainer"] for row in rows[1:5]] == ["LEAFTrainer_x0_distill_lam0p15",
                                                     "LEAFTrainer_x0_distill_lam0p25",
                                                     "LEAFTrainer_x0_distill_lam0p5",
                                                     "LEAFTrainer_x0_distill"]
    assert [row["status"] for row in rows] == ["reused"] + ["trained"] * 6
    assert all(row["steps"] == STEPS for row in rows)


def test_more_steps_continue_the_runs_and_fewer_are_refused(env):
    result = run_experiment("stability", settings(STEPS + 1), seeds=1)
    for row in result["rows"]:
        assert row["status"] == "trained" and row["steps"] == STEPS + 1
        assert row["validation"]["step"] == [1, 2, 3, 4]
    with pytest.raises(LeafnetError, match=f"pass --steps {STEPS + 1} to reuse it"):
        run_experiment("stability", settings(STEPS))
