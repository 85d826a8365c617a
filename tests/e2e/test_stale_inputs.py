"""Training refuses preprocessed arrays that are not what the plans make of the raw files now:
a label changed after planning, plans edited after preprocessing, a planning run that refused
a changed dataset.json (issue 35, 1 and 2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import save

from leafnet.errors import LeafnetError
from leafnet.planning import plan_and_preprocess
from leafnet.training.registry import find_trainer


@pytest.fixture
def env(training_env, tmp_path, monkeypatch):
    """The training demo with this test's own copy of the raw dataset too (it is changed)."""
    raw = tmp_path / "own_raw"
    shutil.copytree(_raw_root(), raw)
    monkeypatch.setenv("LEAFNET_RAW", str(raw))
    return training_env


def _raw_root() -> Path:
    return Path(os.environ["LEAFNET_RAW"])


def _train():
    return find_trainer("LEAFTrainer_x0")(999, num_steps=1, num_workers=0,
                                          show_progress=False).run()


def _split(env):
    folder = env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo"
    return json.loads((folder / "splits_final.json").read_text())["folds"][0]


def test_a_label_changed_after_planning_is_refused_until_planned_again(env):
    case = _split(env)["train"][2]
    label = _raw_root() / "Dataset999_LeafnetDemo" / "labelsTr" / f"{case}.png"
    save(label, np.zeros((64, 64), np.uint8))
    with pytest.raises(LeafnetError, match=f"{case}: made from other source files"):
        _train()
    plan_and_preprocess(999, num_processes=1, show_progress=False)
    _train()


def test_plans_edited_after_preprocessing_are_refused_naming_the_cases(env):
    plans_path = env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo" / "leafnet_plans.json"
    plans = json.loads(plans_path.read_text())
    plans["normalisation"]["windows"][0]["upper"] = 200.0
    plans_path.write_text(json.dumps(plans))
    with pytest.raises(LeafnetError, match="made under other plans"):
        _train()


def test_a_refused_planning_run_keeps_training_refusing_the_changed_dataset_json(env):
    dataset_json = _raw_root() / "Dataset999_LeafnetDemo" / "dataset.json"
    data = json.loads(dataset_json.read_text())
    data["labels"]["extra"] = 2
    dataset_json.write_text(json.dumps(data))
    with pytest.raises(LeafnetError):
        plan_and_preprocess(999, num_processes=1, show_progress=False)
    with pytest.raises(LeafnetError, match="dataset.json changed after planning"):
        _train()
