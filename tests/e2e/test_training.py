"""Trainers on the tiny preset and the demo dataset at 64 px: losses fall, trainer lookup,
the teacher feature cache, view alignment, DDP over gloo, and offline honesty."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import FOLDER_VARIABLES, train_demo as train
from tiny_teachers import install_tiny_teachers

from leafnet.errors import LeafnetError
from leafnet.features.cache import FLIP_STATES, load_or_build_cache
from leafnet.models.teachers import load_teacher
from leafnet.training.checkpointing import load_checkpoint
from leafnet.training.cli import main as train_main
from leafnet.preprocessing.preprocessed_data import apply_flip
from leafnet.training.registry import find_trainer


@pytest.fixture
def env(training_env):
    return training_env


@pytest.mark.parametrize("name", [
    "LEAFTrainer_eps", "LEAFTrainer_v", "LEAFTrainer_x0", "LEAFTrainer_x0_distill",
    "LEAFTrainer_x0_distill_clip", "LEAFTrainer_eps_distill", "LEAFTrainer_v_distill",
    "LEAFTrainer_x0_distill_online", "LEAFAutoencoderTrainer", "LEAFAutoencoderTrainer_masks",
    "LEAFTrainer_x0_tlast", "LEAFTrainer_x0_ttop10", "LEAFTrainer_x0_tmix", "LEAFTrainer_x0_pixel",
    "LEAFTrainer_x0_cpu", "LEAFAutoencoderTrainer_cpu"])
def test_every_trainer_runs_and_its_loss_falls(env, name):
    # The eps trainers' z0 error is the eps error divided by alpha_t (0.026 at t = 999): their
    # per-step loss is noisy and falls slowly, so they get a longer run, and so do the mask
    # autoencoders (they start from the shipped one, near their optimum); medians of quarters.
    steps = 60 if "eps" in name else 40 if "Autoencoder" in name else 20
    trainer = train(name, steps, every=steps // 2)
    losses = trainer.history["losses"]["loss"]
    quarter = steps // 4
    assert np.median(losses[-quarter:]) < np.median(losses[:quarter])
    output = trainer.output
    for file in ("checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth",
                 "training_log.txt", "progress.png", "plans.json", "dataset.json", "split.json"):
        assert (output / file).is_file(), file
    for checkpoint in ("checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth"):
        torch.load(output / checkpoint, map_location="cpu", weights_only=True)
    if "Autoencoder" not in name:
        for model in ("model_best", "model_final"):
            assert (output / model / "network.safetensors").is_file(), model
    assert len(trainer.history["val_dice"]) == 2


def test_trainer_lookup_typo_and_extra_folder(env, tmp_path, monkeypatch, capsys):
    assert find_trainer("LEAFTrainer_x0_distill_lam1p25").distill_lambda == 1.25
    with pytest.raises(LeafnetError, match="did you mean LEAFTrainer_x0_distill"):
        find_trainer("LEAFTrainer_x0_distil")
    (tmp_path / "mine.py").write_text(
        "from leafnet.training.trainers.variants import LEAFTrainer_x0\n\n"
        "class MyTrainer_x0_short(LEAFTrainer_x0):\n    num_steps = 2\n")
    monkeypatch.setenv("LEAFNET_EXTRA_TRAINERS", str(tmp_path))
    assert find_trainer("MyTrainer_x0_short").num_steps == 2


def test_feature_cache_is_reused_and_rebuilt_when_the_teacher_changes(env, monkeypatch):
    calls = []
    real = load_teacher

    def counting(name, grid):
        calls.append(name)
        return real(name, grid)

    monkeypatch.setattr("leafnet.training.tasks.alignment.load_teacher", counting)
    train("LEAFTrainer_x0_distill", 2)
    assert calls == ["dinov2"]
    train("LEAFTrainer_x0_distill", 2)
    assert calls == ["dinov2"]
    torch.manual_seed(5)
    install_tiny_teachers(env)
    train("LEAFTrainer_x0_distill", 2)
    assert calls == ["dinov2", "dinov2"]


def test_a_flipped_sample_gets_the_flipped_views_features(env):
    trainer = find_trainer("LEAFTrainer_x0_distill")(999, num_workers=0, show_progress=False)
    teacher = load_teacher("dinov2", grid=4)
    cache = load_or_build_cache(trainer.folder, "dinov2", 4, trainer.train_cases,
                                lambda: teacher, show_progress=False)
    image = trainer.train_cases.image_and_mask(3)[0]
    for state in FLIP_STATES:
        expected = teacher(torch.from_numpy(apply_flip(image, np.array(state))[None]))
        looked_up = cache.tokens(np.array([3]), np.array([state]))
        torch.testing.assert_close(looked_up, expected, atol=2e-3, rtol=2e-3)
    unflipped = cache.tokens(np.array([3]), np.array([[False, False]]))
    assert not torch.allclose(cache.tokens(np.array([3]), np.array([[False, True]])), unflipped)


def _free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct free ports (held open together while they are picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in sockets)


def _join(rank: int, world_size: int, port: int, environment: dict[str, str]) -> None:
    os.environ.update(environment)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    torch.set_num_threads(1)


def _ddp_worker(rank: int, world_size: int, ports: tuple[int, int],
                environment: dict[str, str]) -> None:
    """The command in a group of two (its missing first stage trained on the way), then a
    second group training the distill trainer for 2 steps."""
    _join(rank, world_size, ports[0], environment)
    find_trainer("LEAFAutoencoderTrainer").num_steps = 2  # a cap: the group is what is tested
    train_main(["999", "LEAFTrainer_x0", "--steps", "2", "--workers", "0", "-device", "cpu"])
    os.environ["MASTER_PORT"] = str(ports[1])
    train("LEAFTrainer_x0_distill", 2, device="cpu")


def test_ddp_trains_a_missing_first_stage_in_the_group_and_matches_one_process(env):
    """Two gloo processes, each started once (a process costs seconds): the command trains the
    missing first stage and then the model in one group, and a distill run of the group equals
    one process with the full batch."""
    shutil.rmtree(env / "leafnet_results" / "Dataset999_LeafnetDemo")
    environment = {k: os.environ[k] for k in FOLDER_VARIABLES}
    mp.spawn(_ddp_worker, args=(2, _free_ports(2), environment), nprocs=2,
             join=True)
    dataset = env / "leafnet_results" / "Dataset999_LeafnetDemo"
    for trainer in ("LEAFAutoencoderTrainer", "LEAFTrainer_x0", "LEAFTrainer_x0_distill"):
        output = dataset / f"{trainer}__leafnetPlans__tiny" / "fold_0"
        assert (output / "checkpoint_final.pth").is_file(), trainer
        assert "2 process(es)" in (output / "training_log.txt").read_text()
    distributed = load_checkpoint(output / "checkpoint_final.pth")
    shutil.rmtree(output)
    single = load_checkpoint(train("LEAFTrainer_x0_distill", 2).output / "checkpoint_final.pth")
    for key, value in single["network"].items():
        torch.testing.assert_close(distributed["network"][key], value, atol=1e-5, rtol=1e-4)
    for key, value in single["projector"].items():
        torch.testing.assert_close(distributed["projector"][key], value, atol=1e-5, rtol=1e-4)


def test_paper_preset_without_weights_stops_before_training(env, capsys):
    with pytest.raises(SystemExit):
        train_main(["999", "LEAFTrainer_x0", "--preset", "paper", "--steps", "1"])
    assert "leafnet_weights fetch ldm-kl8-churches" in capsys.readouterr().err


def test_distill_without_teacher_weights_stops_before_training(env, monkeypatch, tmp_path,
                                                               capsys):
    monkeypatch.setenv("LEAFNET_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(SystemExit):
        train_main(["999", "LEAFTrainer_x0_distill_clip", "--steps", "1"])
    assert "leafnet_weights fetch clip-vit-b-16" in capsys.readouterr().err
    output = (env / "leafnet_results" / "Dataset999_LeafnetDemo"
              / "LEAFTrainer_x0_distill_clip__leafnetPlans__tiny" / "fold_0")
    assert not (output / "checkpoint_latest.pth").exists()


def test_diffusion_trainer_without_a_first_stage_names_the_command(env):
    shutil.rmtree(env / "leafnet_results" / "Dataset999_LeafnetDemo")
    with pytest.raises(LeafnetError, match="leafnet_train Dataset999_LeafnetDemo "
                                           "LEAFAutoencoderTrainer"):
        train("LEAFTrainer_x0", 1)


def test_mask_only_first_stage_is_picked_up_when_named(env):
    train("LEAFAutoencoderTrainer_masks", 4)
    trainer = train("LEAFTrainer_x0", 2, first_stage="LEAFAutoencoderTrainer_masks")
    assert "LEAFAutoencoderTrainer_masks" in trainer.task.network.config.autoencoder_weights


def test_val_flag_validates_the_final_checkpoint(env, capsys):
    train("LEAFTrainer_x0", 2)
    train_main(["999", "LEAFTrainer_x0", "--val", "--workers", "0"])
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1].replace("'", '"'))
    assert 0 <= metrics["dice"] <= 1


def test_train_step_benchmark_reports_the_three_trainers(env, tmp_path):
    from leafnet.benchmarks.cli import main as benchmark_main

    benchmark_main(["train-step", "-d", "999", "--preset", "tiny", "--steps", "2",
                    "-o", str(tmp_path / "train_step.json")])
    numbers = json.loads((tmp_path / "train_step.json").read_text())
    assert set(numbers["seconds_per_step"]) == {"LEAFTrainer_x0", "LEAFTrainer_x0_distill",
                                                "LEAFTrainer_x0_distill_online",
                                                "LEAFTrainer_x0_cpu"}
    assert numbers["cpu_recipe_vs_paper_recipe"] > 0
    assert numbers["teacher_weights"] == "installed"
    assert not (env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo" / "features").exists()


def test_a_run_without_saving_writes_only_its_log(env):
    trainer = find_trainer("LEAFTrainer_x0")(999, num_steps=2, validate_every=1, num_workers=0,
                                             show_progress=False)
    trainer.run(save=False)
    assert len(trainer.history["step_seconds"]) == 2
    assert sorted(p.name for p in trainer.output.iterdir()) == [
        "dataset.json", "plans.json", "split.json", "training_log.txt"]


def test_variant_examples_of_the_readme_and_design_are_trainers_with_their_settings(env):
    from leafnet.training.tasks.diffusion import DiffusionTask
    from leafnet.training.trainers.base import LEAFTrainer

    class LEAFTrainer_x0_example(LEAFTrainer):
        prediction_type = "x0"

    class LEAFTrainer_x0_distill_example(LEAFTrainer_x0_example):
        teacher = "dinov2-vitb14-reg"
        distill_lambda = 0.75

    trainer = LEAFTrainer_x0_distill_example(999, num_workers=0, show_progress=False)
    assert isinstance(trainer.task, DiffusionTask)
    assert trainer.task.prediction_type == "x0"
    assert trainer.task.alignment.weight == 0.75
    assert LEAFTrainer_x0_example(999, show_progress=False).task.alignment is None
    assert find_trainer("LEAFTrainer_x0_distill_example") is LEAFTrainer_x0_distill_example


def test_first_stage_trainer_refuses_diffusion_options(env, capsys):
    with pytest.raises(SystemExit):
        train_main(["999", "LEAFAutoencoderTrainer", "--lam", "0.5", "--steps", "1"])
    assert "--lam does not apply to LEAFAutoencoderTrainer" in capsys.readouterr().err


def test_cosine_recipe_warms_up_then_decays_to_zero_at_the_last_step(env):
    trainer = find_trainer("LEAFTrainer_x0_cpu")(999, num_steps=200, show_progress=False)
    trainer._prepare()
    factor = trainer.scheduler.lr_lambdas[0]
    assert (factor(0), factor(50), factor(200)) == (0.0, 1.0, 0.0)
    assert factor(125) == pytest.approx(0.5)
    from leafnet.utilities.machine import cpu_has_bf16, describe_precision

    assert trainer.cpu_bf16 == cpu_has_bf16()
    precision = describe_precision(trainer.device, trainer.cpu_bf16, type(trainer).cpu_bf16)
    assert ("bf16 autocast" if cpu_has_bf16() else "lacks natively") in precision


def test_cached_teacher_features_refuse_full_augmentation(env):
    from leafnet.training.trainers.variants import LEAFTrainer_x0_distill

    class Augmented(LEAFTrainer_x0_distill):
        augmentation = "full"

    with pytest.raises(LeafnetError, match="teacher_features = 'online'"):
        Augmented(999, show_progress=False)


def test_augmented_batches_do_not_depend_on_the_start_step_or_workers(env):
    from leafnet.training.augmentation import full_augmentation
    from leafnet.training.data_loading import make_loader

    trainer = find_trainer("LEAFTrainer_x0_cpu")(999, show_progress=False)

    def batches(start, workers, count):
        loader = make_loader(trainer.train_cases, 4, 7, start, True, workers,
                             full_augmentation(trainer.plans.target_size))
        out = [next(loader) for _ in range(count)]
        if hasattr(loader, "_finish"):
            loader._finish()
        return out

    straight, resumed = batches(0, 2, 5), batches(3, 0, 2)
    for before, after in zip(straight[3:], resumed, strict=True):
        assert np.array_equal(before["image"], after["image"])
        assert np.array_equal(before["mask"], after["mask"])
        assert set(np.unique(after["mask"])) <= {0.0, 1.0}
        assert after["image"].min() >= -1 and after["image"].max() <= 1
    assert not np.array_equal(straight[0]["image"], straight[1]["image"])


def test_cached_mask_latents_equal_the_frozen_encoder_for_every_view():
    from leafnet.models.network import build_network, network_config
    from leafnet.training.tasks.mask_latents import MaskLatentCache

    torch.manual_seed(0)
    network = build_network(network_config("tiny", "x0")).eval()
    masks = (np.random.default_rng(0).random((3, 1, 32, 32)) > 0.5).astype(np.float32)
    cache, unbounded = MaskLatentCache(), MaskLatentCache(max_bytes=0)
    first = {}
    for state in FLIP_STATES:
        flips = np.array([state] * len(masks), dtype=bool)
        views = torch.from_numpy(np.stack([apply_flip(mask, flips[0]) for mask in masks]))
        with torch.no_grad():
            cached = cache(network, views, np.arange(len(masks)), flips)
            alone = torch.cat([network.encode_mask(view[None]) for view in views])
            batched = network.encode_mask(views)
            uncached = unbounded(network, views, np.arange(len(masks)), flips)
        assert torch.equal(cached, alone) and torch.equal(uncached, alone)
        torch.testing.assert_close(cached, batched, rtol=1e-5, atol=1e-5)
        first[tuple(state)] = cached
    assert cache.encoded == len(masks) * len(FLIP_STATES) == len(cache.latents)
    assert unbounded.latents == {}
    for state in FLIP_STATES:
        flips = np.array([state] * len(masks), dtype=bool)
        views = torch.from_numpy(np.stack([apply_flip(mask, flips[0]) for mask in masks]))
        with torch.no_grad():
            assert torch.equal(cache(network, views, np.arange(len(masks)), flips),
                               first[tuple(state)])
    assert cache.encoded == len(masks) * len(FLIP_STATES)


class FakeClock:
    """``time`` for the loop: each reading advances the clock by ``slow`` seconds for the first
    ``slow_calls`` readings and by ``fast`` after, a pace that changes during the run as on a
    shared machine (what made the LR fitted to the budget jump upward)."""

    def __init__(self, slow_calls: int, slow: float, fast: float) -> None:
        self.now, self.calls = 0.0, 0
        self.slow_calls, self.slow, self.fast = slow_calls, slow, fast

    def perf_counter(self) -> float:
        self.calls += 1
        self.now += self.slow if self.calls <= self.slow_calls else self.fast
        return self.now


def test_budget_lr_decays_smoothly_to_zero_when_the_pace_changes(env, monkeypatch):
    import types

    from leafnet.training import loop

    clock = FakeClock(slow_calls=15, slow=0.5, fast=0.1)
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    trainer = train("LEAFTrainer_x0_cpu", None, every=20, minutes=0.5)
    lr = np.array(trainer.history["lr"])
    peak = int(lr.argmax())
    assert len(lr) > trainer.warmup_steps + 20 and peak > 0
    assert np.all(np.diff(lr[:peak + 1]) >= 0), "the LR fell during the warm-up"
    assert np.all(np.diff(lr[peak:]) <= 1e-12), "the LR went up after it began to fall"
    assert lr[-1] == pytest.approx(0.0, abs=lr.max() * 0.02)


