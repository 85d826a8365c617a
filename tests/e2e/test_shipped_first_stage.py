"""The shipped mask autoencoders, the first stage that is fine-tuned only until it reaches its
target, the ceiling every diffusion run prints, and plans chosen by the measured ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import planned_tiny_demo, point_folders_at

from leafnet.models.shipped_autoencoder import (
    TARGET_RECONSTRUCTION_DICE,
    load_shipped_autoencoder,
    reconstruction_dice,
    shipped_folder,
    shipped_record,
)
from leafnet.planning.ceiling import (
    Candidate,
    CandidateCeiling,
    candidates,
    choose,
    measure_candidates,
)
from leafnet.planning.target_size import MIN_OBJECT_PIXELS, extent
from leafnet.preprocessing.label_scheme import LabelScheme
from leafnet.training.mask_shapes import random_mask
from leafnet.training.registry import find_trainer

BINARY = LabelScheme.for_dataset({"background": 0, "lesion": 1})


def disc(size: int, radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)


def test_random_mask_shapes_are_coded_masks_of_one_to_three_channels_and_repeat_per_seed():
    masks = [random_mask(np.random.default_rng([3, index]), 64) for index in range(60)]
    again = [random_mask(np.random.default_rng([3, index]), 64) for index in range(60)]
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    assert {mask.shape[0] for mask in masks} == {1, 2, 3}
    assert all(mask.shape[1:] == (64, 64) and set(np.unique(mask)) <= {0.0, 1.0}
               for mask in masks)
    covered = [mask[0].mean() for mask in masks]
    assert min(covered) < 0.01 and max(covered) > 0.3   # tiny and large objects both occur


@pytest.mark.parametrize("preset", ["small", "tiny"])
def test_the_shipped_autoencoder_loads_through_the_weights_loader_and_records_its_training(
        preset):
    assert shipped_folder(preset) is not None, (
        f"leafnet/models/shipped/{preset} is missing: tools/make_shipped_autoencoders.sh makes it")
    record = shipped_record(preset)
    assert record["preset"] == preset and record["latent_scale"] > 0
    assert record["steps"] > 0 and record["validation"]
    autoencoder = load_shipped_autoencoder(preset)
    assert not autoencoder.training
    assert {parameter.dtype for parameter in autoencoder.parameters()} == {torch.float32}
    assert shipped_folder("paper") is None and load_shipped_autoencoder("paper") is None


def test_the_shipping_script_trains_on_a_small_mask_folder_and_resumes_only_its_own_run(
        tmp_path, capsys):
    from leafnet.training.shipped_first_stage import main as ship_main

    masks = tmp_path / "masks"
    masks.mkdir()
    for index, radius in enumerate((10, 20, 30)):  # 3 masks: none can be held out
        Image.fromarray(disc(96, radius, (48, 40)) * 255).save(masks / f"m{index}.png")
    (masks / "notes.txt").write_text("not a mask")
    output = tmp_path / "shipped"
    arguments = ["--preset", "tiny", "--steps", "2", "--batch-size", "2", "--size", "32",
                 "--validate-every", "1", "--masks", str(masks), "-o", str(output)]
    ship_main(arguments)
    record = json.loads((output / "shipped.json").read_text())
    assert record["steps"] == 2 and "1 channel" in record["validation"]
    assert all(np.isfinite(list(record["validation"].values())))
    assert (output / "diffusion_pytorch_model.safetensors").is_file()
    with pytest.raises(SystemExit):
        ship_main(arguments[:-4] + ["-o", str(output), "--c"])  # the same run without --masks
    assert "was written with other settings" in capsys.readouterr().err


def test_the_small_shipped_autoencoder_carries_shapes_it_was_not_trained_on():
    """Discs, an off-centre ring and a square at 128 px, drawn here, not by mask_shapes (one
    mask channel each: several classes in one latent are what fine-tuning adds)."""
    autoencoder = load_shipped_autoencoder("small")
    shapes = [disc(128, radius, (64, 60)) for radius in (12, 25, 45)]
    shapes.append(disc(128, 30, (40, 80)) - disc(128, 14, (40, 80)))
    square = np.zeros((128, 128), np.uint8)
    square[30:90, 20:80] = 1
    masks = np.stack(shapes + [square])[:, None].astype(np.float32)
    assert reconstruction_dice(autoencoder, BINARY, masks).min() > 0.95


def test_planning_by_ceiling_enlarges_where_half_the_objects_are_lost_though_the_median_is_not():
    """The median object is just above the size rule's limit at 128 px, so the rule on the
    median keeps 128 px; the ceiling, measured on the cases, does not."""
    rng = np.random.default_rng(0)
    labels = []
    for index in range(16):
        radius = rng.uniform(35, 40) if index < 9 else rng.uniform(9, 12)
        labels.append(disc(512, radius, tuple(rng.uniform(100, 412, 2))))
    diameters = sorted(2 * np.sqrt(label.sum() / np.pi) / 512 for label in labels)
    median = [float(np.median(diameters))] * 2
    assert extent(median, (128, 128)) > MIN_OBJECT_PIXELS      # the median rule: 128 px is fine
    measured = measure_candidates(load_shipped_autoencoder("small"), BINARY, labels,
                                  candidates((128, 128), two_stages=False))
    one, doubled = measured
    assert one.worst < doubled.worst - 0.01
    assert choose(measured).candidate.target_size == (256, 256)


def test_only_a_shipped_autoencoder_that_carries_its_own_shapes_judges_plans():
    from leafnet.models.shipped_autoencoder import PLANNING_MIN_SHAPE_DICE, plans_by_ceiling

    assert plans_by_ceiling("small")
    assert shipped_record("tiny")["validation"]["1 channel"] < PLANNING_MIN_SHAPE_DICE
    assert not plans_by_ceiling("tiny") and not plans_by_ceiling("paper")


def test_the_cheapest_candidate_within_reach_of_the_best_is_chosen():
    def ceiling(name, cost, value):
        return CandidateCeiling(Candidate(name, (128, 128), None, cost), {"a": value},
                                {"a": 1.0})
    cheap, dear = ceiling("one", 1.0, 0.975), ceiling("doubled", 3.5, 0.982)
    assert choose([cheap, dear]) is cheap                    # 0.7 points are not worth 3.5x
    assert choose([ceiling("one", 1.0, 0.93), dear]).candidate.name == "doubled"
    assert choose([ceiling("one", 1.0, TARGET_RECONSTRUCTION_DICE), dear]).candidate.name == "one"


@pytest.fixture(scope="module")
def planned_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped_first_stage")
    with planned_tiny_demo(root, num_cases=24):
        pass
    return root


@pytest.fixture
def tiny_demo(planned_demo, monkeypatch):
    """The module's planned demo (64 px, tiny preset) as this test's leafnet folders."""
    return point_folders_at(planned_demo, monkeypatch)


def _first_stage(target, steps=20):
    trainer_class = find_trainer("LEAFAutoencoderTrainer_masks")
    name = f"LEAFAutoencoderTrainer_goal{round(target * 100)}"
    trainer = type(name, (trainer_class,), {"target_dice": target, "check_every": 5})(
        999, num_steps=steps, validate_every=10, num_workers=0, show_progress=False)
    trainer.run(continue_training=True)
    return trainer


def test_a_first_stage_already_at_its_target_trains_no_step_and_records_its_ceiling(tiny_demo):
    trainer = _first_stage(target=0.0)
    assert trainer.num_steps == 0
    record = json.loads((trainer.output / "autoencoder" / "latent_scale.json").read_text())
    assert record["initial_weights"] == "shipped" and record["target_dice"] == 0.0
    assert set(record["reconstruction_dice"]) == {"polyp"}
    assert "the goal is met at step 0" in (trainer.output / "training_log.txt").read_text()
    # --c on it again finds it finished (its checkpoint_latest is its step-0 state)
    again = _first_stage(target=0.0)
    assert again.num_steps == 0
    assert "the run had already finished at step 0: nothing to do" in \
        (trainer.output / "training_log.txt").read_text()


def test_a_first_stage_below_its_target_trains_until_its_cap_and_says_so(tiny_demo):
    trainer = _first_stage(target=1.01, steps=10)
    assert trainer.num_steps == 10
    log = (trainer.output / "training_log.txt").read_text()
    assert f"reconstruction Dice of {len(trainer.train_cases)} training masks after 5 steps" in log
    assert "goal reached" not in log


def test_a_diffusion_run_prints_the_ceiling_it_works_under(tiny_demo, capsys, monkeypatch):
    from leafnet.training.cli import main as train_main

    # no first stage yet: leafnet_train trains it first (capped at 20 steps here), then the
    # diffusion model.
    monkeypatch.setattr(find_trainer("LEAFAutoencoderTrainer_masks"), "num_steps", 20)
    train_main(["999", "LEAFTrainer_x0", "--steps", "2", "--validate-every", "2",
                "--workers", "0", "--first-stage", "LEAFAutoencoderTrainer_masks"])
    out = capsys.readouterr().out
    assert "needs the first stage LEAFAutoencoderTrainer_masks" in out
    assert "ceiling: the mask autoencoder reconstructs this fold's training masks at Dice " \
           "polyp" in out
