"""The fast mask decoder and what a fold's derived files must match: distillation on the shared
loop (quality, windows, exact resume), a decoder per checkpoint, and ONNX files, fast decoders
and model weights that the fold record does not vouch for, refused."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
import torch
from conftest import fold_images, rgb
from safetensors.torch import load_file, save_file

from leafnet.errors import LeafnetError
from leafnet.inference.cli import main as predict_main
from leafnet.inference.predictor import LEAFPredictor, load_member
from leafnet.model_store.cli import onnx_main
from leafnet.model_store.discovery import find_models
from leafnet.model_store.export_archive import export_model
from leafnet.models.fast_decoder import load_fast_decoder
from leafnet.models.fold_record import model_digest, read_fold_record
from leafnet.training import fast_decoder_distillation as distillation
from leafnet.training.fast_decoder_distillation import distill_fast_decoder


@pytest.fixture
def results(two_fold_results):
    return two_fold_results


def test_fast_decoder_reproduces_the_frozen_decoder(results, tmp_path):
    """The tiny first stage at 64 px decodes soft, ragged masks (Dice 0.90 against the labels)
    that a coarser decoder cannot copy pixel for pixel, so this proxy asks 0.95; with the small
    preset the round trip agrees at 0.993 on `make demo`'s model (`make demo-fast-decoder`) and
    on Kvasir-SEG (docs/results.md, issue 15)."""
    folder = find_models("999", folds=[0])[0]
    report = distill_fast_decoder(folder, steps=400, batch_size=16, show_progress=False)
    validation = report["validation"]
    assert validation["masks_fast_vs_frozen"] >= 0.95
    assert validation["masks_fast_vs_reference"] >= validation["masks_frozen_vs_reference"] - 0.02
    saved = sorted(p.name for p in (folder / "fast_decoder").iterdir())
    assert "config.json" in saved and "distillation.json" in saved
    assert any(name.endswith(".safetensors") for name in saved)
    image = np.moveaxis(rgb(40, 40, 1), -1, 0)
    fast = LEAFPredictor.from_folder(folder, fast_decoder=True).predict([image])[0]
    assert fast.label.shape == (40, 40)
    archive = export_model([folder], tmp_path / "m.zip")
    assert any("fast_decoder/" in name for name in zipfile.ZipFile(archive).namelist())
    assert not [p for p in folder.iterdir() if p.name.startswith(".fast_decoder_")]
    assert os.access(folder / "fast_decoder" / "config.json", os.R_OK)


def test_distillation_windows_carry_context_and_the_loss_sees_the_window_only():
    """A window is decoded with up to ``context`` latent pixels of its neighbours (none beyond
    the image), and the slices returned cut the decoded window back to exactly its target."""
    factor, crop, context = 4, 3, 2
    latents = torch.randn(5, 4, 9, 7)
    targets = latents[:, :1].repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    generator = torch.Generator().manual_seed(0)
    shapes = set()
    for _ in range(60):
        index = torch.randint(5, (2,), generator=generator)
        latent, target, (rows, columns) = distillation._crops(
            latents, targets, index, crop, context, factor, generator)
        shapes.add(tuple(latent.shape[-2:]))
        assert all(crop <= side <= crop + 2 * context for side in latent.shape[-2:])
        decoded = latent[:, :1].repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        assert torch.equal(decoded[..., rows, columns], target)
        assert target.shape[-2:] == (crop * factor, crop * factor)
    assert (crop + 2 * context, crop + 2 * context) in shapes
    assert any(side < crop + 2 * context for shape in shapes for side in shape)


def _fast_weights(folder):
    decoder = load_fast_decoder(folder, folder / "model_best")
    return {name: value.clone() for name, value in decoder.state_dict().items()}


def test_interrupted_distillation_continues_to_the_same_decoder(results, monkeypatch):
    """Stopped after 25 of 40 steps (checkpoints every 10) and continued with resume=True, the
    decoder equals one distilled straight through; the shared loop's record holds the steps
    done, and a continuation with another target is refused."""
    folder = find_models("999", folds=[0])[0]
    settings = dict(steps=40, batch_size=4, max_cases=6, checkpoint_every=10,
                    show_progress=False)
    distill_fast_decoder(folder, **settings)
    straight = _fast_weights(folder)
    shutil.rmtree(folder / "fast_decoder")

    real_step, calls = distillation.FastDecoderTask.compute_losses, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 25:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(distillation.FastDecoderTask, "compute_losses", interrupted)
    with pytest.raises(KeyboardInterrupt):
        distill_fast_decoder(folder, **settings)
    monkeypatch.setattr(distillation.FastDecoderTask, "compute_losses", real_step)
    assert not (folder / "fast_decoder").exists()
    with pytest.raises(LeafnetError, match=r"another target \(steps: 40 -> 50\)"):
        distill_fast_decoder(folder, **{**settings, "steps": 50}, resume=True)
    report = distill_fast_decoder(folder, **settings, resume=True)
    work = folder / distillation.WORK_FOLDER
    assert "at step 20" in (work / "training_log.txt").read_text()
    assert report["steps"] == 40 and read_fold_record(work).steps_done == 40
    resumed = _fast_weights(folder)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def _retrain(model_folder):
    """Stand-in for retraining: new weights under the same name, recorded in the fold record
    as training records what it exports."""
    path = model_folder / "network.safetensors"
    tensors = load_file(str(path))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(path))
    record = read_fold_record(model_folder.parent)
    record.models[model_folder.name.removeprefix("model_")] = model_digest(model_folder)
    record.save(model_folder.parent)


def test_a_fast_decoder_decodes_only_for_the_model_it_was_distilled_from(results, capsys):
    """A decoder distilled for model_best, asked for with -chk final (other weights), is refused
    by prediction, ONNX export and the CLI, naming both models and the -chk that remakes it; one
    distilled for final is then refused beside best."""
    folder = find_models("999", folds=[0])[0]
    _retrain(folder / "model_final")
    distill_fast_decoder(folder, steps=5, batch_size=4, max_cases=4, show_progress=False)
    LEAFPredictor.from_folder(folder, fast_decoder=True)
    with pytest.raises(LeafnetError, match="distilled from model_best, but the model it would "
                                           "decode for is model_final .*-chk final"):
        LEAFPredictor.from_folder(folder, checkpoint="final", fast_decoder=True)
    with pytest.raises(SystemExit):
        predict_main(["-i", str(fold_images(folder.parent / "in", 1)), "-o",
                      str(folder.parent / "out"), "-f", "0", "-chk", "final", "--fast-decoder",
                      "-device", "cpu"])
    assert "distilled from model_best" in capsys.readouterr().err
    distill_fast_decoder(folder, steps=5, batch_size=4, max_cases=4, show_progress=False,
                         checkpoint="final")
    LEAFPredictor.from_folder(folder, checkpoint="final", fast_decoder=True)
    with pytest.raises(LeafnetError, match="distilled from model_final.*-chk best"):
        LEAFPredictor.from_folder(folder, fast_decoder=True)
    with pytest.raises(LeafnetError, match="distilled from model_final"):
        export_model([folder], folder.parent / "best_only.zip")
    export_model([folder], folder.parent / "both.zip", ("best", "final"))


def test_model_weights_the_fold_did_not_export_are_refused(results):
    """Weights copied into model_best from another fold, an edited plans.json (prediction and
    export), and a model_final left by an earlier run of a folder whose training was started
    over, are refused naming the fold record."""
    folders = find_models("999", folds=[0, 1])
    model = folders[0] / "model_best"
    shutil.copy(folders[1] / "model_best" / "network.safetensors", model / "network.safetensors")
    with pytest.raises(LeafnetError, match="holds other weights .* than the fold's training "
                                           "exported"):
        LEAFPredictor.from_folder(folders[0])
    plans = folders[1] / "plans.json"
    original = plans.read_text()
    plans.write_text(original.replace("\n", " \n", 1))
    with pytest.raises(LeafnetError, match="is not the plans the fold was trained under"):
        LEAFPredictor.from_folder(folders[1])
    with pytest.raises(LeafnetError, match="is not the plans the fold was trained under"):
        export_model([folders[1]], folders[1].parent / "edited.zip")
    plans.write_text(original)
    record = read_fold_record(folders[1])
    record.models = {}
    record.save(folders[1])
    with pytest.raises(LeafnetError, match="not exported by the fold's run .*started over"):
        LEAFPredictor.from_folder(folders[1], checkpoint="final")


def test_an_onnx_file_and_fast_decoder_left_from_other_weights_are_refused(results, tmp_path):
    """Retrained weights beside the old network.onnx and fast_decoder/: prediction and export
    refuse both, naming the command that remakes each; so do an ONNX file copied from another
    fold's model and a truncated one."""
    pytest.importorskip("onnxruntime")
    folders = find_models("999", folds=[0, 1])
    distill_fast_decoder(folders[0], steps=5, batch_size=4, max_cases=4, show_progress=False)
    onnx_main(["-d", "999", "-f", "0", "1"])
    load_member(folders[0], backend="onnxruntime")
    model = folders[0] / "model_best"
    (tmp_path / "keep").mkdir()
    shutil.copy(model / "network.onnx", tmp_path / "keep" / "network.onnx")
    _retrain(model)
    with pytest.raises(LeafnetError, match="other weights .*leafnet_export_onnx -d 999 "
                                           "-tr LEAFTrainer_x0 .* -f 0 -chk best"):
        load_member(folders[0], backend="onnxruntime")
    with pytest.raises(LeafnetError, match="fast_decoder was made from other weights .*"
                                           "leafnet_distill_decoder -d 999"):
        LEAFPredictor.from_folder(folders[0], fast_decoder=True)
    with pytest.raises(LeafnetError, match="other weights"):
        export_model([folders[0]], tmp_path / "stale.zip")
    assert not (tmp_path / "stale.zip").exists()
    onnx_main(["-d", "999", "-f", "0"])
    load_member(folders[0], backend="onnxruntime")
    for name in ("network.onnx", "network.onnx.json"):
        shutil.copy(folders[1] / "model_best" / name, model / name)
    with pytest.raises(LeafnetError, match="other weights"):
        load_member(folders[0], backend="onnxruntime")
    onnx_main(["-d", "999", "-f", "0"])
    (model / "network.onnx").write_bytes((model / "network.onnx").read_bytes()[:1000])
    with pytest.raises(LeafnetError, match="not the file its record describes"):
        load_member(folders[0], backend="onnxruntime")
