"""Sharing trained models: export to a zip and install it, refused archives, fold ensembles and
uncertainty, ONNX against PyTorch."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile

import numpy as np
import pytest
from conftest import fold_images, rgb

from leafnet.errors import LeafnetError
from leafnet.inference.cli import main as predict_main
from leafnet.inference.predict_folder import predict_folder
from leafnet.inference.predictor import LEAFPredictor, load_member
from leafnet.model_store.archive_format import MANIFEST, read_archive, sha256
from leafnet.model_store.cli import export_main, install_main, onnx_main
from leafnet.model_store.discovery import find_models
from leafnet.model_store.export_archive import export_model
from leafnet.model_store.install_archive import install_model

RUN = "LEAFTrainer_x0__leafnetPlans__tiny"


@pytest.fixture
def results(two_fold_results):
    return two_fold_results


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
    predict_main(["-i", str(fold_images(tmp_path / "in")), "-o", str(tmp_path / "out"), "-f", "0",
                  "1", "-device", "cpu"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "case0.png", "case1.png", "case2.png", "prediction_record.json"]
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
    fold_images(tmp_path / "in", 2)
    predictor = LEAFPredictor.from_folders(find_models("999", folds=[0]))
    with pytest.raises(LeafnetError, match="several members"):
        predict_folder(predictor, tmp_path / "in", tmp_path / "out", save_uncertainty=True,
                       show_progress=False)
    predict_folder(predictor, tmp_path / "in", tmp_path / "out", num_samples=3,
                   save_uncertainty=True, show_progress=False)
    saved = np.load(tmp_path / "out" / "case0_uncertainty.npz")
    assert saved["uncertainty"].shape == (1, 48, 64) and int(saved["members"]) == 3
    assert float(saved["uncertainty"].max()) > 0


def test_a_fold_trained_here_without_its_record_is_refused_but_an_older_one_is_read(results):
    folder = find_models("999", folds=[0])[0]
    (folder / "fold_record.json").unlink()
    with pytest.raises(LeafnetError, match="fold_record.json is missing, so its exported "
                                           "weights cannot be checked"):
        LEAFPredictor.from_folder(folder)
    (folder / "run_settings.json").write_text("{}")     # an older leafnet's fold
    assert LEAFPredictor.from_folder(folder).plans.plans_name == "leafnetPlans"


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
    predict_main(["-i", str(fold_images(tmp_path / "in", 1)), "-o", str(tmp_path / "out"),
                  "-f", "0", "--backend", "onnxruntime", "-device", "cpu"])
    assert (tmp_path / "out" / "case0.png").is_file()


def test_missing_onnx_file_names_the_export_command(results):
    folder = find_models("999", folds=[0])[0]
    with pytest.raises(LeafnetError, match="leafnet_export_onnx"):
        load_member(folder, backend="onnxruntime")


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
