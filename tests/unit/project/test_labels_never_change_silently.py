"""Class A of the safety issue: masks are read by one stated rule per dataset, ambiguous ones
are refused with the files named, and images are read as every viewer shows them."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from conftest import disc_mask, rgb, save
from PIL import Image

from leafnet.dataset_conversion import convert_folder
from leafnet.imageio.mask_rule import MaskRule
from leafnet.errors import LeafnetError
from leafnet.imageio import read_image, read_label

QUIET = dict(num_processes=1, show_progress=False)


def pairs(tmp_path, masks: dict[str, np.ndarray], mode: str | None = None, ending=".png"):
    for name, mask in masks.items():
        save(tmp_path / "img" / f"{name}.png", rgb(*mask.shape[:2], seed=len(name)))
        image = Image.fromarray(mask, mode=mode)
        if mode == "P":
            image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        (tmp_path / "msk").mkdir(exist_ok=True)
        image.save(tmp_path / "msk" / f"{name}{ending}")


def convert(tmp_path, **options):
    folder, _ = convert_folder(tmp_path / "img", tmp_path / "msk", 40, "Masks", **QUIET,
                               **options)
    return {p.stem: read_label(p)[0] for p in sorted((folder / "labelsTr").iterdir())}


@pytest.mark.parametrize("value", [2, 7, 255])
def test_two_valued_masks_keep_their_object_and_the_rule_is_printed(tmp_path, capsys, value):
    pairs(tmp_path, {f"c{i}": disc_mask(16, 16, foreground=value) for i in range(3)})
    labels = convert(tmp_path)
    for label in labels.values():
        np.testing.assert_array_equal(label, disc_mask(16, 16))
    printed = capsys.readouterr().out
    assert f"masks: values {{0,{value}}} in 3 files" in printed
    assert f"foreground = value >= {(value + 1) // 2}" in printed


def test_the_printed_rule_names_values_files_and_threshold(tmp_path, capsys):
    pairs(tmp_path, {f"c{i}": disc_mask(16, 16, foreground=255) for i in range(3)})
    convert(tmp_path)
    assert "masks: values {0,255} in 3 files (1-channel) -> foreground = value >= 128" in \
        capsys.readouterr().out


def test_three_values_for_two_labels_are_refused_naming_the_file_and_the_fix(tmp_path):
    odd = disc_mask(16, 16)
    odd[0, 0] = 2
    pairs(tmp_path, {"a": disc_mask(16, 16), "b": disc_mask(16, 16), "odd": odd})
    with pytest.raises(LeafnetError, match=r"values \{0,1,2\}.*odd\.png.*--label-map"):
        convert(tmp_path)
    labels = convert(tmp_path, label_map=((0, 0), (1, 1), (2, 1)))
    assert labels["odd"][0, 0] == 1


def test_a_stray_value_in_one_lossless_file_is_refused(tmp_path):
    stray = disc_mask(16, 16, foreground=255)
    stray[0, 0] = 7
    pairs(tmp_path, {"a": disc_mask(16, 16, 255), "b": disc_mask(16, 16, 255), "s": stray})
    with pytest.raises(LeafnetError, match=r"s\.png"):
        convert(tmp_path)


def test_a_threshold_that_erases_some_masks_is_refused_before_writing(tmp_path):
    pairs(tmp_path, {"a": disc_mask(16, 16, 1), "b": disc_mask(16, 16, 1)})
    with pytest.raises(LeafnetError, match=r"no foreground .*a\.png"):
        convert(tmp_path, threshold=128)


def test_palette_masks_are_read_as_indices(tmp_path, capsys):
    pairs(tmp_path, {f"c{i}": disc_mask(16, 16, foreground=1) for i in range(2)}, mode="P")
    labels = convert(tmp_path)
    np.testing.assert_array_equal(labels["c0"], disc_mask(16, 16))
    assert "palette PNG" in capsys.readouterr().out


def test_colour_masks_need_a_channel(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = disc_mask(16, 16, 255)
    red[..., 2] = 40
    pairs(tmp_path, {"a": red, "b": red})
    with pytest.raises(LeafnetError, match="colour images .*--mask-channel"):
        convert(tmp_path)
    labels = convert(tmp_path, mask_channel=0)
    np.testing.assert_array_equal(labels["a"], disc_mask(16, 16))


def test_jpeg_masks_with_compression_noise_are_thresholded_half_way(tmp_path, capsys):
    pairs(tmp_path, {f"c{i}": np.repeat(disc_mask(32, 32, 255)[..., None], 3, -1)
                     for i in range(3)}, ending=".jpg")
    labels = convert(tmp_path)
    assert np.mean(labels["c0"] == disc_mask(32, 32)) > 0.97
    assert "JPEG" in capsys.readouterr().out


def _rimmed_disc(size: int, width: int) -> np.ndarray:
    """A REFUGE-like 0 / 128 / 255 mask: a disc of 255 in a ring of 128 ``width`` px wide."""
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    mask = np.zeros((size, size), np.uint8)
    mask[radius < size / 4] = 255
    mask[(radius >= size / 4 - width) & (radius < size / 4)] = 128
    return mask


@pytest.mark.parametrize("width, quality", [(3, 95), (5, 90), (7, 90), (4, 75)])
def test_jpeg_masks_with_a_rim_of_a_third_value_are_refused_like_their_pngs(
        tmp_path, width, quality):
    for index in range(3):
        save(tmp_path / "img" / f"c{index}.png", rgb(128, 128, index))
        (tmp_path / "msk").mkdir(exist_ok=True)
        Image.fromarray(_rimmed_disc(128, width)).save(tmp_path / "msk" / f"c{index}.jpg",
                                                       quality=quality)
    with pytest.raises(LeafnetError, match="form regions of their own .*--label-map"):
        convert(tmp_path)


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_thin_vessels_in_jpeg_masks_are_still_compression_noise(tmp_path, quality):
    """The rim rule above must not take JPEG's ringing around 1-4 px lines for a region."""
    for index in range(3):
        mask = np.zeros((128, 128), np.uint8)
        for offset, width in zip((20, 50, 80, 110), (1, 2, 3, 4), strict=True):
            mask[offset + index:offset + index + width, :] = 255
            mask[:, offset:offset + width] = 255
        save(tmp_path / "img" / f"v{index}.png", rgb(128, 128, index))
        (tmp_path / "msk").mkdir(exist_ok=True)
        Image.fromarray(mask).save(tmp_path / "msk" / f"v{index}.jpg", quality=quality)
    labels = convert(tmp_path)
    assert set(np.unique(labels["v0"])) == {0, 1}


def test_a_rule_that_empties_a_case_is_an_error_after_writing_too(tmp_path):
    save(tmp_path / "ones.png", disc_mask(16, 16, 1))
    with pytest.raises(LeafnetError, match="its object vanished"):
        MaskRule(threshold=128).write(tmp_path / "ones.png", tmp_path / "label.png")


def test_the_lossless_of_two_candidate_masks_is_taken_and_said(tmp_path, capsys):
    save(tmp_path / "img" / "X.png", rgb(16, 16))
    save(tmp_path / "msk" / "X_lesion.bmp", disc_mask(16, 16, 255))
    noisy = np.zeros((16, 16), np.uint8)
    save(tmp_path / "msk" / "X_lesion.jpg", noisy)
    labels = convert(tmp_path, mask_suffix="_lesion")
    np.testing.assert_array_equal(labels["X"], disc_mask(16, 16))
    assert "took the lossless X_lesion.bmp over X_lesion.jpg" in capsys.readouterr().out
    save(tmp_path / "msk" / "X_lesion.png", disc_mask(16, 16, 255))
    with pytest.raises(LeafnetError, match="3 mask files share the name X_lesion"):
        convert(tmp_path, mask_suffix="_lesion", overwrite=True)


def test_exif_rotated_jpegs_are_read_as_displayed_everywhere(tmp_path):
    stored = rgb(20, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: 40 high, 20 wide
    (tmp_path / "img").mkdir()
    Image.fromarray(stored).save(tmp_path / "img" / "r.jpg", exif=exif, quality=95)
    shown = np.asarray(Image.open(tmp_path / "img" / "r.jpg").transpose(Image.Transpose.ROTATE_270))
    assert shown.shape[:2] == (40, 20)
    save(tmp_path / "msk" / "r.png", disc_mask(40, 20, 255))
    folder, _ = convert_folder(tmp_path / "img", tmp_path / "msk", 41, "Exif", **QUIET)
    raw_image = next((folder / "imagesTr").iterdir())
    image, _ = read_image(raw_image)
    assert image.shape == (3, 40, 20)
    error = np.abs(image.astype(int) - np.moveaxis(shown, -1, 0).astype(int)).mean()
    upside_down = np.abs(image.astype(int) - np.moveaxis(shown[::-1, ::-1], -1, 0)).mean()
    assert error < 10 and error < upside_down / 4
    with Image.open(raw_image) as written:
        assert written.getexif().get(0x0112, 1) == 1


def test_non_images_are_skipped_with_a_note_and_affix_hints_are_given(tmp_path, capsys):
    for name in ("a", "b"):
        save(tmp_path / "img" / f"{name}.png", rgb(16, 16))
        save(tmp_path / "msk" / f"{name}_gt.png", disc_mask(16, 16))
    (tmp_path / "img" / "Thumbs.db").write_bytes(b"\0")
    (tmp_path / "img" / "make_masks.py").write_text("print()")
    with pytest.raises(LeafnetError, match="--mask-suffix '_gt'"):
        convert(tmp_path)
    assert "skipped 2 files" in capsys.readouterr().out
    convert(tmp_path, mask_suffix="_gt")


def test_a_folder_of_sub_folders_says_what_to_do(tmp_path):
    save(tmp_path / "img" / "part1" / "a.png", rgb(16, 16))
    save(tmp_path / "msk" / "a.png", disc_mask(16, 16))
    with pytest.raises(LeafnetError, match="only sub-folders .*part1.*flatten"):
        convert(tmp_path)


def test_soft_float_masks_are_refused_naming_the_file_and_the_fix(tmp_path):
    save(tmp_path / "img" / "a.png", rgb(16, 16))
    (tmp_path / "msk").mkdir()
    tifffile.imwrite(tmp_path / "msk" / "a.tif", disc_mask(16, 16).astype(np.float32) * 0.7)
    with pytest.raises(LeafnetError, match=r"a\.tif: mask values must be integers.*0\.7.*"
                                           r"--threshold"):
        convert(tmp_path)
