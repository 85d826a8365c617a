import numpy as np
import pytest
import SimpleITK as sitk
from conftest import rgb, save
from PIL import Image

from leafnet.imageio import (
    ImageReadError,
    canonical_ending,
    file_ending,
    read_array,
    read_image,
    read_label,
    strip_ending,
    write_image,
    write_label,
)


@pytest.mark.parametrize("ending", [".png", ".bmp", ".tif", ".nii.gz", ".mha", ".nrrd"])
def test_rgb_image_round_trips_losslessly(tmp_path, ending):
    image = np.moveaxis(rgb(20, 30), -1, 0)
    write_image(tmp_path / f"x{ending}", image)
    read, properties = read_image(tmp_path / f"x{ending}")
    assert read.shape == (3, 20, 30)
    assert properties.shape == (20, 30) and properties.channels == 3
    np.testing.assert_array_equal(read, image)


def test_jpeg_image_is_read_as_three_channels(tmp_path):
    write_image(tmp_path / "x.jpg", np.moveaxis(rgb(16, 16), -1, 0))
    assert read_image(tmp_path / "x.jpg")[0].shape == (3, 16, 16)


def test_sixteen_bit_grayscale_keeps_its_values(tmp_path):
    image = np.arange(12 * 10, dtype=np.uint16).reshape(1, 12, 10) * 500
    write_image(tmp_path / "x.png", image)
    read, properties = read_image(tmp_path / "x.png")
    assert properties.channels == 1
    np.testing.assert_array_equal(read, image)


def test_nifti_keeps_geometry_through_properties(tmp_path):
    volume = sitk.GetImageFromArray(np.arange(30, dtype=np.int16).reshape(1, 5, 6))
    volume.SetSpacing((0.5, 0.7, 2.0))
    volume.SetOrigin((10.0, -3.0, 1.0))
    sitk.WriteImage(volume, str(tmp_path / "a.nii.gz"))
    array, properties = read_image(tmp_path / "a.nii.gz")
    assert array.shape == (1, 5, 6) and properties.sitk_dimension == 3
    write_image(tmp_path / "b.nii.gz", array, properties)
    written = sitk.ReadImage(str(tmp_path / "b.nii.gz"))
    assert written.GetSpacing() == pytest.approx((0.5, 0.7, 2.0))
    assert written.GetOrigin() == (10.0, -3.0, 1.0)


def test_properties_survive_json(tmp_path):
    write_image(tmp_path / "a.nrrd", np.zeros((1, 4, 5), np.uint8))
    properties = read_array(tmp_path / "a.nrrd")[1]
    assert type(properties).from_json(properties.to_json()) == properties


def test_rgba_image_is_refused_with_the_file_name(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8), mode="RGBA")
    with pytest.raises(ImageReadError, match=r"a\.png.*alpha"):
        read_image(tmp_path / "a.png")


def test_palette_label_keeps_indices(tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(tmp_path / "l.png")
    label, _ = read_label(tmp_path / "l.png")
    np.testing.assert_array_equal(label, [[0, 1], [2, 1]])


def test_labels_refuse_jpeg_and_multichannel_files(tmp_path):
    with pytest.raises(ImageReadError, match="lossless"):
        write_label(tmp_path / "l.jpg", np.zeros((4, 4), np.uint8))
    save(tmp_path / "l.png", rgb(4, 4))
    with pytest.raises(ImageReadError, match=r"l\.png.*one channel"):
        read_label(tmp_path / "l.png")


def test_truncated_file_is_an_error_naming_it(tmp_path):
    write_image(tmp_path / "a.png", np.moveaxis(rgb(64, 64), -1, 0))
    (tmp_path / "a.png").write_bytes((tmp_path / "a.png").read_bytes()[:200])
    with pytest.raises(ImageReadError, match=r"a\.png"):
        read_image(tmp_path / "a.png")


def test_writes_leave_no_temporary_files(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    write_label(folder / "l.png", np.ones((3, 3), np.uint8))
    assert [p.name for p in folder.iterdir()] == ["l.png"]


def test_endings():
    assert file_ending("a/b.NII.GZ") == ".nii.gz"
    assert strip_ending("case_0000.nii.gz") == "case_0000"
    assert canonical_ending("x.JPEG") == ".jpg"
