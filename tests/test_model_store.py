"""Sharing trained models: export to a zip and install it, refused archives, fold ensembles and
uncertainty, ONNX against PyTorch, and the fast mask decoder."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from conftest import planned_tiny_demo, rgb, save

from leafnet.errors import LeafnetError
from leafnet.inference.cli import main as predict_main
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.predictor import LEAFPredictor, load_member
from leafnet.model_store.archive_format import MANIFEST, read_archive, sha256
from leafnet.model_store.cli import export_main, install_main, onnx_main
from leafnet.model_store.discovery import find_models
from leafnet.model_store.export_archive import export_model
from leafnet.model_store.install_archive import install_model
from leafnet.models.fast_decoder import load_fast_decoder
from leafnet.models.fold_record import model_digest, read_fold_record
from leafnet.training import fast_decoder_distillation as distillation
from leafnet.training.fast_decoder_distillation import distill_fast_decoder
from leafnet.training.registry import find_trainer

RUN = "LEAFTrainer_x0__leafnetPlans__tiny"


@pytest.fixture(scope="module")
def two_folds(tmp_path_factory):
    """A tiny model trained for a few steps on two folds of the demo (each fold with its own
    first stage; fold 0's first stage long enough to code the masks, for the fast decoder)."""
    root = tmp_path_factory.mktemp("model_store")
    with planned_tiny_demo(root, num_cases=20):
        splits_path = next((root / "leafnet_preprocessed").glob("Dataset999_*")) \
            / "splits_final.json"
        splits = json.loads(splits_path.read_text())
        first = splits["folds"][0]
        cases = sorted(first["train"] + first["val"])
        second = {"val": cases[:3], "train": cases[3:]}
        splits["folds"] = [first, second]
        splits.pop("generated_by")
        splits_path.write_text(json.dumps(splits))
        for fold in (0, 1):
            find_trainer("LEAFAutoencoderTrainer")(999, fold=fold, num_steps=3 + 150 * (fold == 0),
                                                   num_workers=0, show_progress=False).run()
            find_trainer("LEAFTrainer_x0")(999, fold=fold, num_steps=3, num_workers=0,
                                           show_progress=False).run()
    return root


@pytest.fixture
def results(two_folds, monkeypatch, tmp_path):
    shutil.copytree(two_folds / "leafnet_results", tmp_path / "results")
    monkeypatch.setenv("LEAFNET_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEAFNET_PREPROCESSED", str(two_folds / "leafnet_preprocessed"))
    return tmp_path / "results"


def _images(folder, count=3):
    for index in range(count):
        save(folder / f"case{index}_0000.png", rgb(48 + 8 * index, 64, index))
    return folder


def test_exported_model_installs_into_an_empty_results_folder_and_predicts_without_pth(
        results, tmp_path, monkeypatch):
    archive = tmp_path / "model.zip"
    export_main(["-d", "999", "-tr", "LEAFTrainer_x0", "-f", "0", "1", "-o", str(archive)])
    names = zipfile.ZipFile(archive).namelist()
    assert MANIFEST in names and not [n for n in names if n.endswith((".pth", ".pkl"))]
    assert f"Dataset999_LeafnetDemo/{RUN}/fold_1/model_best/network.safetensors" in names
    fresh = tmp_path / "fresh_results"
    monkeypatch.setenv("LEAFNET_RESULTS", str(fresh))
    install_main([str(archive)])
    assert not list(fresh.rglob("*.pth"))
    predict_main(["-i", str(_images(tmp_path / "in")), "-o", str(tmp_path / "out"), "-f", "0",
                  "1", "-device", "cpu"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "case0.png", "case1.png", "case2.png"]
    with pytest.raises(SystemExit):
        install_main([str(archive)])


def test_predictor_from_zip_equals_the_installed_folders(results, tmp_path):
    archive = export_model(find_models("999", folds=[0]), tmp_path / "m.zip")
    image = np.moveaxis(rgb(40, 52), -1, 0)
    zipped = LEAFPredictor.from_zip(archive).predict([image], seed=3)[0]
    folder = LEAFPredictor.from_folders(find_models("999", folds=[0])).predict([image], seed=3)[0]
    np.testing.assert_array_equal(zipped.probability, folder.probability)


def _rewrite(archive, target, change):
    """Copy ``archive`` to ``target`` with ``change(name, data, bundle)`` writing each entry."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as bundle:
        for info in source.infolist():
            change(info.filename, source.read(info.filename), bundle)
    return target


def test_archives_reaching_outside_their_folder_are_refused(results, tmp_path):
    archive = export_model(find_models("999", folds=[0]), tmp_path / "m.zip")
    manifest = json.loads(zipfile.ZipFile(archive).read(MANIFEST))

    def with_extra(name, data):
        def change(entry, content, bundle):
            if entry == MANIFEST:
                content = json.dumps({**manifest, "files": {
                    **manifest["files"], name: sha256(data)}}).encode()
            bundle.writestr(entry, content)
            if entry == MANIFEST:
                bundle.writestr(name, data)
        return change

    for bad in ("../evil.json", "/etc/evil.json", f"Dataset999_LeafnetDemo/{RUN}/../../x.json",
                "Dataset998_Other/x.json", f"Dataset999_LeafnetDemo/{RUN}/fold_0/x.pth"):
        broken = _rewrite(archive, tmp_path / "bad.zip", with_extra(bad, b"{}"))
        with pytest.raises(LeafnetError, match="refused"):
            install_model(broken, tmp_path / "target")
        assert not (tmp_path / "target").exists() or not any((tmp_path / "target").iterdir())
    assert not (tmp_path / "evil.json").exists()


def test_links_unlisted_files_and_wrong_checksums_are_refused(results, tmp_path):
    archive = export_model(find_models("999", folds=[0]), tmp_path / "m.zip")
    plans = f"Dataset999_LeafnetDemo/{RUN}/fold_0/plans.json"

    def as_link(entry, content, bundle):
        if entry == plans:
            info = zipfile.ZipInfo(entry)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, "/etc/passwd")
        else:
            bundle.writestr(entry, content)

    def tampered(entry, content, bundle):
        bundle.writestr(entry, content + b" " if entry == plans else content)

    with pytest.raises(LeafnetError, match="is a link"):
        read_archive(_rewrite(archive, tmp_path / "link.zip", as_link))
    with pytest.raises(LeafnetError, match="checksum"):
        read_archive(_rewrite(archive, tmp_path / "tampered.zip", tampered))
    (tmp_path / "not_a_zip.zip").write_text("hello")
    with pytest.raises(LeafnetError, match="not a readable"):
        read_archive(tmp_path / "not_a_zip.zip")


def test_fold_ensemble_equals_the_mean_of_its_members(results):
    folders = find_models("999", folds=[0, 1])
    image = np.moveaxis(rgb(45, 61, 4), -1, 0)
    singles = [LEAFPredictor.from_folder(folder).predict([image], seed=5)[0]
               for folder in folders]
    ensemble = LEAFPredictor.from_folders(folders).predict([image], seed=5,
                                                           uncertainty=True)[0]
    np.testing.assert_allclose(ensemble.probability,
                               np.mean([s.probability for s in singles], axis=0), atol=1e-5)
    assert ensemble.uncertainty.shape == ensemble.probability.shape
    spread = np.std([s.probability for s in singles], axis=0)
    np.testing.assert_allclose(ensemble.uncertainty, spread, atol=1e-4)


def test_uncertainty_needs_several_members_and_is_saved_beside_the_labels(results, tmp_path):
    _images(tmp_path / "in", 2)
    predictor = LEAFPredictor.from_folders(find_models("999", folds=[0]))
    with pytest.raises(LeafnetError, match="several members"):
        predict_folder(predictor, tmp_path / "in", tmp_path / "out", save_uncertainty=True,
                       show_progress=False)
    predict_folder(predictor, tmp_path / "in", tmp_path / "out", num_samples=3,
                   save_uncertainty=True, show_progress=False)
    saved = np.load(tmp_path / "out" / "case0_uncertainty.npz")
    assert saved["uncertainty"].shape == (1, 48, 64) and int(saved["members"]) == 3
    assert float(saved["uncertainty"].max()) > 0


def test_folds_planned_differently_are_not_ensembled(results):
    folders = find_models("999", folds=[0, 1])
    plans = json.loads((folders[1] / "plans.json").read_text())
    plans["target_size"] = [32, 32]
    (folders[1] / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(LeafnetError, match="planned differently"):
        LEAFPredictor.from_folders(folders)


def test_onnx_export_equals_torch_and_predicts_through_the_cli(results, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx_main(["-d", "999", "-f", "0"])
    folder = find_models("999", folds=[0])[0]
    record = json.loads((folder / "model_best" / "network.onnx.json").read_text())
    assert record["max_abs_difference_vs_torch"] < 1e-4
    image = np.moveaxis(rgb(50, 70, 2), -1, 0)
    torch_run = LEAFPredictor.from_folder(folder).predict([image], seed=1, num_samples=2)[0]
    onnx_run = LEAFPredictor.from_folder(folder, backend="onnxruntime").predict(
        [image], seed=1, num_samples=2)[0]
    assert np.abs(onnx_run.probability - torch_run.probability).max() < 1e-4
    predict_main(["-i", str(_images(tmp_path / "in", 1)), "-o", str(tmp_path / "out"),
                  "-f", "0", "--backend", "onnxruntime", "-device", "cpu"])
    assert (tmp_path / "out" / "case0.png").is_file()


def test_missing_onnx_file_names_the_export_command(results):
    folder = find_models("999", folds=[0])[0]
    with pytest.raises(LeafnetError, match="leafnet_export_onnx"):
        load_member(folder, backend="onnxruntime")


def test_fast_decoder_reproduces_the_frozen_decoder(results, tmp_path):
    """The tiny first stage at 64 px decodes soft, ragged masks (Dice 0.90 against the labels)
    that a coarser decoder cannot copy pixel for pixel, so this proxy asks 0.95; with the small
    preset the round trip agrees at 0.993 on `make demo`'s model (`make demo-fast-decoder`) and
    on Kvasir-SEG (docs/results.md, issue 15)."""
    folder = find_models("999", folds=[0])[0]
    report = distill_fast_decoder(folder, steps=800, batch_size=16, show_progress=False)
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
        predict_main(["-i", str(_images(folder.parent / "in", 1)), "-o",
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


def test_weights_that_are_not_safetensors_are_one_message(results):
    folder = find_models("999", folds=[0])[0]
    (folder / "model_best" / "network.safetensors").write_bytes(b"\x80\x04 a pickle, say")
    with pytest.raises(LeafnetError, match="is not a readable safetensors file"):
        LEAFPredictor.from_folder(folder)


def _moved(archive, target, dataset):
    """``archive`` with its model moved under another dataset folder (checksums kept)."""
    def change(entry, content, bundle):
        if entry == MANIFEST:
            manifest = json.loads(content)
            manifest["files"] = {name.replace("Dataset999_LeafnetDemo", dataset): digest
                                 for name, digest in manifest["files"].items()}
            content = json.dumps({**manifest, "dataset": dataset}).encode()
        bundle.writestr(entry.replace("Dataset999_LeafnetDemo", dataset), content)
    return _rewrite(archive, target, change)


def test_a_model_under_another_dataset_id_is_refused(results, tmp_path):
    archive = export_model(find_models("999", folds=[0]), tmp_path / "m.zip")
    with pytest.raises(LeafnetError, match="planned for dataset Dataset999_LeafnetDemo, but the "
                                           "manifest installs it under Dataset007_Other"):
        install_model(_moved(archive, tmp_path / "moved.zip", "Dataset007_Other"),
                      tmp_path / "target")
    assert not (tmp_path / "target" / "Dataset007_Other").exists()
    moved = results / "Dataset007_Other" / RUN / "fold_0"
    shutil.copytree(find_models("999", folds=[0])[0], moved)
    with pytest.raises(LeafnetError, match="lies under Dataset007_Other but was planned for "
                                           "Dataset999_LeafnetDemo"):
        LEAFPredictor.from_folder(moved)


def test_zip_bombs_and_malformed_manifests_are_refused_before_inflating(results, tmp_path):
    archive = export_model(find_models("999", folds=[0]), tmp_path / "m.zip")
    plans = f"Dataset999_LeafnetDemo/{RUN}/fold_0/plans.json"
    manifest = json.loads(zipfile.ZipFile(archive).read(MANIFEST))

    def bomb(entry, content, bundle):
        if entry == plans:
            bundle.writestr(zipfile.ZipInfo(entry), b"\0" * (64 << 20),
                            compress_type=zipfile.ZIP_DEFLATED)
        else:
            bundle.writestr(entry, content)

    with pytest.raises(LeafnetError, match="would inflate .* zip bomb"):
        read_archive(_rewrite(archive, tmp_path / "bomb.zip", bomb))
    for broken in ({"version": "x"}, {"folds": "0"}, {"folds": [-1]}, {"files": ["a"]},
                   {"files": {plans: 5}}):
        def change(entry, content, bundle, broken=broken):
            bundle.writestr(entry, json.dumps({**manifest, **broken}).encode()
                            if entry == MANIFEST else content)
        with pytest.raises(LeafnetError, match="manifest"):
            read_archive(_rewrite(archive, tmp_path / "broken.zip", change))


def test_install_overwrite_never_replaces_a_fold_trained_here(results, tmp_path):
    folder = find_models("999", folds=[0])[0]
    archive = export_model([folder], tmp_path / "m.zip")
    with pytest.raises(LeafnetError, match="not installed from an archive"):
        install_model(archive, results, overwrite=True)
    assert (folder / "checkpoint_final.pth").is_file()
    fresh = tmp_path / "fresh"
    install_model(archive, fresh)
    assert install_model(archive, fresh, overwrite=True)
