"""One test per converter, each on a small tree in the source's official layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import disc_mask, rgb, save

from leafnet.dataset_conversion import (
    convert_cvc_clinicdb,
    convert_demo,
    convert_folder,
    convert_isic2018,
    convert_kvasir_seg,
    convert_qata_cov19,
    convert_refuge2,
)
from leafnet.dataset_conversion.cli import main as convert_main
from leafnet.errors import LeafnetError
from leafnet.imageio import read_image, read_label

QUIET = dict(num_processes=1, show_progress=False)


def noisy_jpeg_mask(path: Path, height: int, width: int) -> np.ndarray:
    """A 0/255 disc saved as a 3-channel JPEG (compression noise at the edges), like Kvasir's."""
    mask = disc_mask(height, width, foreground=255)
    save(path, np.repeat(mask[..., None], 3, axis=-1))
    return mask


def labels_of(folder: Path, subset: str = "Tr") -> dict[str, np.ndarray]:
    return {p.name: read_label(p)[0] for p in sorted((folder / f"labels{subset}").iterdir())}


def dataset_json(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text())


def test_kvasir_flat_layout(tmp_path):
    root = tmp_path / "Kvasir-SEG"
    for index, (h, w) in enumerate([(40, 56), (48, 40), (36, 36)]):
        save(root / "images" / f"cju{index}abc.jpg", rgb(h, w, index))
        noisy_jpeg_mask(root / "masks" / f"cju{index}abc.jpg", h, w)
    folder, report = convert_kvasir_seg(tmp_path, **QUIET)
    assert folder.name == "Dataset005_KvasirSEG" and report.ok
    assert dataset_json(folder)["leafnet_split"]["rule"] == "ratio"
    labels = labels_of(folder)
    assert labels["cju1abc.png"].shape == (48, 40)
    assert all(set(np.unique(label)) == {0, 1} for label in labels.values())
    expected = disc_mask(48, 40)
    assert (labels["cju1abc.png"] != expected).mean() < 0.02
    copied = folder / "imagesTr" / "cju0abc_0000.jpg"
    assert copied.read_bytes() == (root / "images" / "cju0abc.jpg").read_bytes()


def test_kvasir_split_folder_layout(tmp_path):
    for split, names in {"train": ["a", "b"], "val": ["c"], "test": ["d"]}.items():
        for name in names:
            save(tmp_path / split / "images" / f"{name}.jpg", rgb(32, 32))
            noisy_jpeg_mask(tmp_path / split / "masks" / f"{name}.jpg", 32, 32)
    folder, _ = convert_kvasir_seg(tmp_path, **QUIET)
    description = dataset_json(folder)
    assert description["numTraining"] == 3 and description["numTest"] == 1
    assert description["leafnet_split"] == {"rule": "official_test", "val_cases": ["c"]}
    assert (folder / "labelsTs" / "d.png").is_file()


@pytest.mark.parametrize("variant, ending", [(".", ".tif"), ("PNG", ".png")])
def test_cvc_clinicdb_tif_and_png_variants(tmp_path, variant, ending):
    root = tmp_path / variant
    for index in (1, 2, 10):
        save(root / "Original" / f"{index}{ending}", rgb(30, 40, index))
        save(root / "Ground Truth" / f"{index}{ending}", disc_mask(30, 40, foreground=255))
    folder, _ = convert_cvc_clinicdb(tmp_path, **QUIET)
    assert sorted(labels_of(folder)) == [f"cvc_{i:04d}.png" for i in (1, 2, 10)]
    assert all(label.max() == 1 for label in labels_of(folder).values())
    assert dataset_json(folder)["leafnet_split"] == {
        "rule": "ratio", "train": 0.8, "val": 0.1, "test": 0.1}
    image, _ = read_image(folder / "imagesTr" / f"cvc_0002_0000{ending}")
    np.testing.assert_array_equal(np.moveaxis(image, 0, -1), rgb(30, 40, 2))


def test_isic2018(tmp_path):
    images = tmp_path / "ISIC2018_Task1-2_Training_Input"
    masks = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    for index in range(3):
        save(images / f"ISIC_{index:07d}.jpg", rgb(20, 30, index))
        save(masks / f"ISIC_{index:07d}_segmentation.png", disc_mask(20, 30, foreground=255))
    (images / "LICENSE.txt").write_text("licence text")
    folder, _ = convert_isic2018(tmp_path, **QUIET)
    assert sorted(labels_of(folder)) == [f"ISIC_{i:07d}.png" for i in range(3)]
    assert dataset_json(folder)["leafnet_split"]["test"] == 0.3


def test_qata_cov19_makes_gray_images_and_an_official_test_set(tmp_path):
    root = tmp_path / "QaTa-COV19-v2"
    for set_name, names in {"Train Set": ["covid_1", "covid_2"], "Test Set": ["sub-1"]}.items():
        for name in names:
            gray = rgb(24, 24)[..., 0]
            save(root / set_name / "Images" / f"{name}.png", np.stack([gray] * 3, -1))
            save(root / set_name / "Ground-truths" / f"mask_{name}.png",
                 disc_mask(24, 24, foreground=255))
    folder, _ = convert_qata_cov19(tmp_path, **QUIET)
    image, properties = read_image(folder / "imagesTr" / "covid_1_0000.png")
    assert properties.channels == 1
    np.testing.assert_array_equal(image[0], rgb(24, 24)[..., 0])
    assert sorted(labels_of(folder, "Ts")) == ["sub-1.png"]
    assert dataset_json(folder)["channel_names"] == {"0": "gray"}


def test_refuge2_keeps_disc_and_cup_as_nested_regions(tmp_path):
    mask = np.full((40, 40), 255, np.uint8)
    mask[10:30, 10:30] = 128
    mask[15:25, 15:25] = 0
    for split, names in {"train": ["g0001", "n0001"], "val": ["V0001"], "test": ["T0001"]}.items():
        for name in names:
            save(tmp_path / "REFUGE2" / split / "images" / f"{name}.jpg", rgb(40, 40))
            save(tmp_path / "REFUGE2" / split / "mask" / f"{name}.bmp", mask)
    folder, _ = convert_refuge2(tmp_path, **QUIET)
    label = labels_of(folder)["g0001.png"]
    np.testing.assert_array_equal(label, np.select([mask == 0, mask == 128], [2, 1], 0))
    description = dataset_json(folder)
    assert description["labels"] == {"background": 0, "disc": [1, 2], "cup": 2}
    assert description["regions_class_order"] == [1, 2]
    assert "--labels cup" in description["description"]
    split = description["leafnet_split"]
    assert split == {"rule": "official_test", "val_cases": ["V0001"]}
    assert sorted(labels_of(folder, "Ts")) == ["T0001.png"]


def test_folder_matches_affixes_and_maps_labels(tmp_path):
    save(tmp_path / "img" / "a.png", rgb(16, 16))
    save(tmp_path / "img" / "b.png", rgb(16, 16))
    three_values = np.array([[0, 128, 255, 0]] * 4, np.uint8).repeat(4, axis=0).repeat(4, axis=1)
    save(tmp_path / "msk" / "mask_a.png", three_values)
    save(tmp_path / "msk" / "b_segmentation.png", three_values)
    folder, _ = convert_folder(
        tmp_path / "img", tmp_path / "msk", 12, "Mine", labels=["background", "rim", "cup"],
        label_map=((0, 0), (128, 1), (255, 2)), split={"rule": "kfold", "folds": 2}, **QUIET)
    assert folder.name == "Dataset012_Mine"
    assert set(np.unique(labels_of(folder)["a.png"])) == {0, 1, 2}
    assert dataset_json(folder)["labels"] == {"background": 0, "rim": 1, "cup": 2}


def test_folder_reads_mixed_0_1_and_0_255_masks_by_an_explicit_map(tmp_path):
    save(tmp_path / "img" / "a.png", rgb(16, 16)[..., 0])
    save(tmp_path / "img" / "b.png", rgb(16, 16)[..., 0])
    save(tmp_path / "msk" / "a.png", disc_mask(16, 16, foreground=255))
    save(tmp_path / "msk" / "b.png", disc_mask(16, 16, foreground=1))
    save(tmp_path / "test_img" / "c.png", rgb(16, 16)[..., 0])
    save(tmp_path / "test_msk" / "c.png", disc_mask(16, 16, foreground=255))
    with pytest.raises(LeafnetError, match=r"b\.png.*--label-map .*0:0,1:1,255:1"):
        convert_folder(tmp_path / "img", tmp_path / "msk", 13, "Bin",
                       test_images=tmp_path / "test_img", test_masks=tmp_path / "test_msk",
                       **QUIET)
    folder, _ = convert_folder(tmp_path / "img", tmp_path / "msk", 13, "Bin",
                               test_images=tmp_path / "test_img", test_masks=tmp_path / "test_msk",
                               label_map=((0, 0), (1, 1), (255, 1)), **QUIET)
    assert list(labels_of(folder, "Ts")) == ["c.png"]
    labels = labels_of(folder)
    np.testing.assert_array_equal(labels["a.png"], disc_mask(16, 16))
    np.testing.assert_array_equal(labels["b.png"], disc_mask(16, 16))
    assert dataset_json(folder)["channel_names"] == {"0": "gray"}


def test_folder_reports_images_without_masks(tmp_path):
    save(tmp_path / "img" / "a.png", rgb(8, 8))
    save(tmp_path / "img" / "lonely.png", rgb(8, 8))
    save(tmp_path / "msk" / "a.png", disc_mask(8, 8))
    with pytest.raises(LeafnetError, match="lonely.png"):
        convert_folder(tmp_path / "img", tmp_path / "msk", 14, "X", **QUIET)


def test_demo_is_deterministic_per_seed(leafnet_folders):
    first, _ = convert_demo(seed=3, num_cases=10, size=64, **QUIET)
    first_bytes = {p.name: p.read_bytes() for p in sorted(first.rglob("*.png"))}
    again, _ = convert_demo(seed=3, num_cases=10, size=64, overwrite=True, **QUIET)
    assert {p.name: p.read_bytes() for p in sorted(again.rglob("*.png"))} == first_bytes
    other, _ = convert_demo(seed=4, num_cases=10, size=64, overwrite=True, **QUIET)
    assert {p.name: p.read_bytes() for p in sorted(other.rglob("*.png"))} != first_bytes


def test_demo_has_a_held_out_test_split_and_varied_blobs(leafnet_folders):
    folder, report = convert_demo(num_cases=20, size=64, **QUIET)
    assert report.num_cases == {"Tr": 16, "Ts": 4}
    fractions = [label.mean() for label in labels_of(folder).values()]
    assert max(fractions) > 0.05 and min(fractions) < max(fractions) / 3


def test_existing_dataset_is_not_overwritten_without_the_flag(leafnet_folders):
    convert_demo(num_cases=10, size=32, **QUIET)
    with pytest.raises(LeafnetError, match="already exists; pass --overwrite"):
        convert_demo(num_cases=10, size=32, **QUIET)
    folder, _ = convert_demo(num_cases=12, size=32, overwrite=True, **QUIET)
    assert dataset_json(folder)["numTraining"] + dataset_json(folder)["numTest"] == 12


def test_failed_conversion_leaves_nothing_behind(tmp_path, leafnet_folders):
    save(tmp_path / "img" / "a.png", rgb(8, 8))
    (tmp_path / "img" / "b.png").write_bytes(b"broken")
    save(tmp_path / "msk" / "a.png", disc_mask(8, 8))
    save(tmp_path / "msk" / "b.png", disc_mask(8, 8))
    with pytest.raises(LeafnetError, match=r"b\.png"):
        convert_folder(tmp_path / "img", tmp_path / "msk", 15, "Broken", channels=3, **QUIET)
    assert list(leafnet_folders["LEAFNET_RAW"].iterdir()) == []


def test_conversion_that_fails_verification_leaves_nothing_behind(tmp_path, leafnet_folders):
    save(tmp_path / "img" / "a.png", rgb(8, 8))
    save(tmp_path / "msk" / "a.png", disc_mask(6, 8))
    with pytest.raises(LeafnetError, match="sizes differ"):
        convert_folder(tmp_path / "img", tmp_path / "msk", 16, "Sizes", **QUIET)
    assert list(leafnet_folders["LEAFNET_RAW"].iterdir()) == []


def test_unknown_layout_names_the_expected_one(tmp_path):
    with pytest.raises(LeafnetError, match="ISIC2018_Task1-2_Training_Input"):
        convert_isic2018(tmp_path, **QUIET)


def test_cli_converts_the_demo(leafnet_folders, capsys):
    convert_main(["demo", "--num-cases", "10", "--size", "32", "-np", "1", "-d", "7"])
    output = capsys.readouterr().out
    assert "Dataset007_LeafnetDemo: integrity check passed (8 Tr, 2 Ts cases)" in output


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        convert_main(["kvasir-seg", str(tmp_path / "missing")])
    assert exited.value.code == 1
    expected = f"leafnet_convert: error: {tmp_path / 'missing'}: no such folder"
    assert capsys.readouterr().err.strip() == expected


def test_split_option_parsing():
    from leafnet.dataset_conversion.folder import parse_split

    assert parse_split("ratio:0.7,0.1,0.2") == {"rule": "ratio", "train": 0.7, "val": 0.1,
                                                 "test": 0.2}
    assert parse_split("kfold:5") == {"rule": "kfold", "folds": 5}
    assert parse_split("official_test") == {"rule": "official_test", "val": 0.1}
    with pytest.raises(LeafnetError, match="not understood"):
        parse_split("ratio:a,b,c")


def _label_folders(root: Path, soft: bool = False) -> dict[str, Path]:
    """Two cases with a disc mask folder and a cup mask folder (the cup inside the disc); soft
    cup maps hold 0..255 ramps instead of 0/255."""
    disc = disc_mask(16, 16, foreground=255)
    cup = np.zeros((16, 16), np.uint8)
    cup[6:10, 6:10] = 255
    if soft:
        cup = np.where(cup > 0, 200, 40).astype(np.uint8)
        cup[0, :3] = [0, 90, 255]
    for name in ("a", "b"):
        save(root / "img" / f"{name}.png", rgb(16, 16))
        save(root / "disc" / f"{name}.png", disc)
        save(root / "cup" / f"{name}.png", cup)
    return {"disc": root / "disc", "cup": root / "cup"}


def test_folder_with_one_nested_mask_folder_per_label_writes_regions(tmp_path, capsys):
    _label_folders(tmp_path, soft=True)
    convert_main(["folder", "--images", str(tmp_path / "img"), "--masks",
                  f"disc={tmp_path / 'disc'}", "--masks", f"cup={tmp_path / 'cup'}",
                  "--threshold", "cup=128", "--nested", "--name", "Eyes", "-d", "21",
                  "--split", "kfold:2", "-np", "1"])
    printed = capsys.readouterr().out
    assert "cup: " in printed and "128" in printed
    folder = tmp_path / "leafnet_raw" / "Dataset021_Eyes"
    label = labels_of(folder)["a.png"]
    expected = (disc_mask(16, 16) > 0).astype(np.uint8)
    expected[6:10, 6:10] = 2
    expected[0, 2] = 2
    np.testing.assert_array_equal(label, expected)
    description = dataset_json(folder)
    assert description["labels"] == {"background": 0, "disc": [1, 2], "cup": 2}
    assert description["regions_class_order"] == [1, 2]


def test_test_masks_are_matched_to_their_labels_by_name_in_any_order(tmp_path):
    _label_folders(tmp_path)
    _label_folders(tmp_path / "test")
    for path in sorted((tmp_path / "test").rglob("*.png")):
        path.rename(path.with_name(f"t{path.name}"))
    convert_main(["folder", "--images", str(tmp_path / "img"), "--masks",
                  f"disc={tmp_path / 'disc'}", "--masks", f"cup={tmp_path / 'cup'}",
                  "--test-images", str(tmp_path / "test" / "img"),
                  "--test-masks", f"cup={tmp_path / 'test' / 'cup'}",
                  "--test-masks", f"disc={tmp_path / 'test' / 'disc'}",
                  "--nested", "--name", "Eyes", "-d", "23", "-np", "1"])
    folder = tmp_path / "leafnet_raw" / "Dataset023_Eyes"
    for subset, case in (("Tr", "a.png"), ("Ts", "ta.png")):
        label = labels_of(folder, subset)[case]
        assert label[8, 8] == 2 and label[8, 3] == 1, subset   # cup inside, disc rim outside


def test_folder_label_folders_that_overlap_need_nested(tmp_path):
    masks = _label_folders(tmp_path)
    with pytest.raises(LeafnetError, match=r"cup overlaps an earlier label .* --nested"):
        convert_folder(tmp_path / "img", masks, 22, "Eyes", split={"rule": "kfold", "folds": 2},
                       **QUIET)
    disc = disc_mask(16, 16, foreground=255)
    ring = np.where(disc > 0, 0, 255).astype(np.uint8)
    for name in ("a", "b"):
        save(tmp_path / "cup" / f"{name}.png", ring)
    folder, _ = convert_folder(tmp_path / "img", masks, 22, "Eyes",
                               split={"rule": "kfold", "folds": 2}, **QUIET)
    assert set(np.unique(labels_of(folder)["b.png"])) == {1, 2}
    assert dataset_json(folder)["labels"] == {"background": 0, "disc": 1, "cup": 2}


def test_folder_label_folders_need_a_mask_for_every_image_and_named_options(tmp_path, capsys):
    masks = _label_folders(tmp_path)
    (tmp_path / "cup" / "b.png").unlink()
    with pytest.raises(LeafnetError, match=r"1 images in .*img have no mask named .*cup: b\.png"):
        convert_folder(tmp_path / "img", masks, 23, "Eyes", **QUIET)
    with pytest.raises(SystemExit):
        convert_main(["folder", "--images", str(tmp_path / "img"), "--masks",
                      str(tmp_path / "disc"), "--masks", f"cup={tmp_path / 'cup'}",
                      "--name", "Eyes", "-d", "23"])
    assert "every --masks needs its own label name, NAME=VALUE" in capsys.readouterr().err


def test_demo_with_two_labels_nests_a_core_in_each_blob(leafnet_folders):
    folder, _ = convert_demo(num_cases=10, size=64, num_labels=2, dataset_id=998, **QUIET)
    assert folder.name == "Dataset998_LeafnetDemoNested"
    description = dataset_json(folder)
    assert description["labels"] == {"background": 0, "lesion": [1, 2], "core": 2}
    labels = list(labels_of(folder).values())
    assert any(2 in np.unique(label) for label in labels)
    binary, _ = convert_demo(num_cases=10, size=64, **QUIET)
    for nested, plain in zip(labels, labels_of(binary).values(), strict=True):
        np.testing.assert_array_equal(nested > 0, plain > 0)
