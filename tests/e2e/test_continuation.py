"""Continuing a run: --c resumes exactly (workers, augmentation, bf16, a minutes budget), and
the fold record refuses a continuation with other inputs (settings, a retrained first stage, a
moved split, a foreign checkpoint, an older leafnet's folder) or a shrinking --extend."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import train_demo as train

from leafnet.errors import LeafnetError
from leafnet.training.checkpointing import load_checkpoint
from leafnet.training.cli import main as train_main
from leafnet.training.registry import find_trainer


@pytest.fixture
def env(training_env):
    return training_env


def _state(trainer) -> dict[str, torch.Tensor]:
    state = dict(trainer.task.network.state_dict())
    state.update({f"projector.{k}": v for k, v in trainer.task.projector.state_dict().items()})
    state.update({f"ema.{i}": p for i, p in enumerate(trainer.ema.shadow_params)})
    return state


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(env):
    uninterrupted = _state(train("LEAFTrainer_x0_distill", 6, every=3, workers=2))
    shutil.rmtree(env / "leafnet_results" / "Dataset999_LeafnetDemo"
                  / "LEAFTrainer_x0_distill__leafnetPlans__tiny")
    train("LEAFTrainer_x0_distill", 3, every=3, workers=2)
    resumed = find_trainer("LEAFTrainer_x0_distill")(999, num_steps=6, validate_every=3,
                                                     num_workers=1, show_progress=False,
                                                     extend=True)
    resumed.run(continue_training=True)
    assert load_checkpoint(resumed.output / "checkpoint_final.pth")["step"] == 6
    for key, value in _state(resumed).items():
        assert torch.equal(value, uninterrupted[key]), key


def test_interrupted_augmented_bf16_cosine_training_resumes_exactly(env, monkeypatch):
    from leafnet.training.loop import Trainer

    uninterrupted = _weights(train("LEAFTrainer_x0_cpu", 6, every=3, workers=2))
    shutil.rmtree(env / "leafnet_results" / "Dataset999_LeafnetDemo"
                  / "LEAFTrainer_x0_cpu__leafnetPlans__tiny")

    class Interrupted(Exception):
        pass

    end_of_interval = Trainer._end_of_interval

    def interrupt_after_step_3(self, done, seconds, **options):
        end_of_interval(self, done, seconds, **options)
        if done == 3:
            raise Interrupted

    monkeypatch.setattr(Trainer, "_end_of_interval", interrupt_after_step_3)
    with pytest.raises(Interrupted):
        train("LEAFTrainer_x0_cpu", 6, every=3, workers=2)
    monkeypatch.setattr(Trainer, "_end_of_interval", end_of_interval)
    resumed = train("LEAFTrainer_x0_cpu", 6, every=3, workers=1, continue_training=True)
    for key, value in _weights(resumed).items():
        assert torch.equal(value, uninterrupted[key]), key


def _weights(trainer) -> dict[str, torch.Tensor]:
    state = dict(trainer.task.network.state_dict())
    state.update({f"ema.{i}": p for i, p in enumerate(trainer.ema.shadow_params)})
    return state


def test_minutes_budget_stops_saves_and_continues_with_steps(env, capsys):
    trainer = train("LEAFTrainer_x0", None, every=50, minutes=1e-4)
    state = load_checkpoint(trainer.output / "checkpoint_final.pth")
    assert state["step"] == 1 and trainer.history["train_seconds"] > 6e-3
    assert "minute budget is spent after 1 steps" in (trainer.output / "training_log.txt"
                                                        ).read_text()
    with pytest.raises(LeafnetError, match="minutes: 0.0001 -> None"):
        train("LEAFTrainer_x0", 3, every=50, continue_training=True)
    resumed = train("LEAFTrainer_x0", 3, every=50, continue_training=True, extend=True)
    assert load_checkpoint(resumed.output / "checkpoint_final.pth")["step"] == 3
    assert resumed.history["train_step"] == [0, 1, 2]


def test_continuing_with_other_settings_is_refused_naming_the_difference(env):
    train("LEAFTrainer_x0_distill", 2, every=2)
    with pytest.raises(LeafnetError, match=r"distill_lambda: 0\.75 -> 0\.5"):
        train("LEAFTrainer_x0_distill", 2, every=2, lam=0.5, continue_training=True)
    with pytest.raises(LeafnetError, match=r"seed: 12345 -> 7"):
        train("LEAFTrainer_x0_distill", 2, every=2, seed=7, continue_training=True)
    with pytest.raises(LeafnetError, match=r"first_stage: 'LEAFAutoencoderTrainer' -> "):
        train("LEAFTrainer_x0_distill", 2, every=2, first_stage="LEAFAutoencoderTrainer_masks",
              continue_training=True)
    with pytest.raises(LeafnetError, match=r"steps: 2 -> 4.*--extend"):
        train("LEAFTrainer_x0_distill", 4, every=2, continue_training=True)
    extended = train("LEAFTrainer_x0_distill", 4, every=2, continue_training=True, extend=True)
    assert load_checkpoint(extended.output / "checkpoint_final.pth")["step"] == 4
    recorded = json.loads((extended.output / "fold_record.json").read_text())
    assert (recorded["target"]["steps"], recorded["steps_done"], recorded["inputs"]["seed"],
            recorded["inputs"]["task"]["distill_lambda"]) == (4, 4, 12345, 0.75)
    plans = env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo" / "leafnet_plans.json"
    plans.write_text(plans.read_text().replace("\n", " \n", 1))
    with pytest.raises(LeafnetError, match="plans_sha256"):
        train("LEAFTrainer_x0_distill", 4, every=2, continue_training=True)


def _record(trainer):
    return json.loads((trainer.output / "fold_record.json").read_text())


def test_continuing_on_a_retrained_first_stage_is_refused_naming_it(env):
    """x0 trained on one first stage, the first stage trained again with another seed (other
    weights, another latent scale): ``--c --extend`` is refused, as it would load the old
    weights under the new latent scale; so is a continuation after the first stage was
    removed."""
    run = train("LEAFTrainer_x0", 2, every=2)
    stage = _record(run)["inputs"]["first_stage"]
    first = find_trainer("LEAFAutoencoderTrainer")(999, num_steps=20, validate_every=20,
                                                   num_workers=0, show_progress=False)
    folder = first.output / "autoencoder"
    scale = json.loads((folder / "latent_scale.json").read_text())["latent_scale"]
    assert stage["latent_scale"] == scale and stage["weights_sha256"]
    assert stage["origin"] in ("trained here", "shipped", "shipped, fine-tuned here")
    find_trainer("LEAFAutoencoderTrainer")(999, num_steps=30, validate_every=30, num_workers=0,
                                           show_progress=False, seed=7).run()
    retrained = json.loads((folder / "latent_scale.json").read_text())["latent_scale"]
    assert retrained != scale
    with pytest.raises(LeafnetError, match=r"first_stage\.latent_scale.*first_stage\."
                                           r"weights_sha256.*mask autoencoder is not the one"):
        train("LEAFTrainer_x0", 4, every=2, continue_training=True, extend=True)
    shutil.rmtree(first.output)
    with pytest.raises(LeafnetError, match=r"first_stage\.weights_sha256: '[0-9a-f]+' -> None"):
        train("LEAFTrainer_x0", 4, every=2, continue_training=True, extend=True)


def test_continuing_after_the_split_changed_is_refused_naming_the_moved_cases(env):
    train("LEAFTrainer_x0", 2, every=2)
    path = env / "leafnet_preprocessed" / "Dataset999_LeafnetDemo" / "splits_final.json"
    splits = json.loads(path.read_text())
    splits.pop("generated_by", None)
    fold = splits["folds"][0]
    moved = fold["val"].pop(0)
    fold["train"].append(moved)
    path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match=rf"split_sha256.*1 case\(s\) moved: {moved} val -> "
                                           r"train.*trained on"):
        train("LEAFTrainer_x0", 4, every=2, continue_training=True, extend=True)
    fold["train"].remove(moved)
    fold["val"].insert(0, moved)
    fold["train"].reverse()
    path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match="the same cases in another order"):
        train("LEAFTrainer_x0", 2, every=2, continue_training=True)


def test_extend_trains_further_and_never_shrinks_a_run(env):
    run = train("LEAFTrainer_x0", 4, every=2)
    with pytest.raises(LeafnetError, match=r"--extend trains a run further; steps: 4 -> 2"):
        train("LEAFTrainer_x0", 2, every=2, continue_training=True, extend=True)
    with pytest.raises(LeafnetError, match=r"--extend trains a run further; steps: 4 -> None; "
                                           r"minutes: None -> 1e-06"):
        train("LEAFTrainer_x0", None, every=2, minutes=1e-6, continue_training=True,
              extend=True)
    assert _record(run)["target"] == {"steps": 4, "minutes": None}
    assert load_checkpoint(run.output / "checkpoint_final.pth")["step"] == 4
    started_over = find_trainer("LEAFTrainer_x0")(999, num_steps=2, validate_every=2,
                                                  num_workers=0, show_progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    started_over.task.compute_losses = interrupted
    with pytest.raises(KeyboardInterrupt):
        started_over.run()
    assert not list(run.output.glob("checkpoint_*.pth"))
    assert train("LEAFTrainer_x0", 2, every=2, continue_training=True).history[
        "train_step"] == [0, 1]


def test_a_run_without_a_fold_record_or_with_a_foreign_checkpoint_is_not_continued(env):
    """A folder of a leafnet before the record (run_settings.json) and one whose
    checkpoint_latest.pth was copied from a run with another seed are refused by --c."""
    run = train("LEAFTrainer_x0", 2, every=2)
    (run.output / "fold_record.json").rename(run.output / "run_settings.json")
    with pytest.raises(LeafnetError, match="older leafnet.*split.*without --c"):
        train("LEAFTrainer_x0", 2, every=2, continue_training=True)
    other = train("LEAFTrainer_x0", 2, every=2, seed=7)
    shutil.copy(other.output / "checkpoint_latest.pth", env / "seed7.pth")
    train("LEAFTrainer_x0", 2, every=2)
    shutil.copy(env / "seed7.pth", run.output / "checkpoint_latest.pth")
    with pytest.raises(LeafnetError, match=r"checkpoint_latest.pth was written by a run with "
                                           r"other inputs \(seed: 7 -> 12345\)"):
        train("LEAFTrainer_x0", 4, every=2, continue_training=True, extend=True)


def test_train_cli_refuses_a_changed_lambda_on_continue(env, capsys):
    train_main(["999", "LEAFTrainer_x0_distill", "--steps", "1", "--validate-every", "1",
                "--workers", "0", "--lam", "0.75"])
    with pytest.raises(SystemExit):
        train_main(["999", "LEAFTrainer_x0_distill", "--steps", "1", "--workers", "0",
                    "--lam", "0.5", "--c"])
    assert "distill_lambda: 0.75 -> 0.5" in capsys.readouterr().err


def test_a_fold_split_file_is_checked_and_its_digest_is_that_of_its_three_lists():
    from leafnet.models.fold_record import FoldSplit

    split = FoldSplit.from_json({"train": ["a", "b"], "val": ["c"], "test": []}, "split.json")
    assert split.train == ["a", "b"] and split.to_json()["val"] == ["c"]
    assert split.digest() != FoldSplit(["b", "a"], ["c"], []).digest()
    for broken in ([], {"train": "a"}, {"train": [1]}, None):
        with pytest.raises(LeafnetError, match="split.json: not a fold split"):
            FoldSplit.from_json(broken, "split.json")


def test_training_again_without_c_says_it_started_over(env):
    first = train("LEAFTrainer_x0", 2)
    assert "started over" not in (first.output / "training_log.txt").read_text()
    again = train("LEAFTrainer_x0", 2)
    log = (again.output / "training_log.txt").read_text()
    assert "started over, without --c (leafnet_train ... --c continues a run instead): the " \
           "earlier run's checkpoint_latest.pth" in log


def test_a_checkpoint_with_another_alignment_mlp_width_is_refused_by_name(env, monkeypatch):
    """A tiny-preset checkpoint saved before the preset's projector_hidden changed: --c names
    the alignment MLP's shapes instead of failing inside torch."""
    import dataclasses

    from leafnet.models import presets

    train("LEAFTrainer_x0_distill", 2, every=2)
    monkeypatch.setitem(presets.PRESETS, "tiny",
                        dataclasses.replace(presets.PRESETS["tiny"], projector_hidden=32))
    with pytest.raises(LeafnetError, match=r"alignment MLP has another shape.*projector_hidden "
                                           r"32.*\(64, .*\) -> \(32, .*without --c"):
        train("LEAFTrainer_x0_distill", 4, every=2, continue_training=True, extend=True)
