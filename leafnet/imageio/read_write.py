"""Readers and writers that dispatch on the file ending."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageOps, UnidentifiedImageError

from leafnet.atomic import atomic_path
from leafnet.errors import LeafnetError
from leafnet.imageio.endings import (
    IMAGE_ENDINGS,
    LABEL_ENDINGS,
    LOSSY_ENDINGS,
    SITK_ENDINGS,
    file_ending,
)
from leafnet.imageio.properties import ImageProperties

EXIF_ORIENTATION = 0x0112
_SINGLE_CHANNEL_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_CONVERT_TO_RGB_MODES = {"CMYK", "YCbCr", "LAB", "HSV"}


class ImageReadError(LeafnetError):
    """A file that cannot be read as a 2D image; the message names it."""


def _check_ending(path: Path, allowed: tuple[str, ...], what: str) -> str:
    ending = file_ending(path)
    if ending not in allowed:
        raise ImageReadError(
            f"{path}: '{ending or '(none)'}' is not a supported {what} format; "
            f"use one of {', '.join(allowed)}"
        )
    return ending


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored; 2..8 = mirrored and/or rotated for display)."""
    try:
        return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (ValueError, TypeError, OSError):
        return 1


def _pillow_limit() -> None:
    """``LEAFNET_MAX_IMAGE_PIXELS`` raises Pillow's decompression-bomb limit for trusted data."""
    value = os.environ.get("LEAFNET_MAX_IMAGE_PIXELS")
    if value:
        if not value.strip().isdigit():
            raise LeafnetError(f"LEAFNET_MAX_IMAGE_PIXELS={value!r} is not a number of pixels; "
                               "set it to a whole number such as 300000000, or unset it")
        Image.MAX_IMAGE_PIXELS = int(value)


def _bomb(path: Path, error: Exception) -> ImageReadError:
    return ImageReadError(
        f"{path}: has more pixels than Pillow reads by default ({error}); if the file is "
        "trusted, set LEAFNET_MAX_IMAGE_PIXELS to a larger number of pixels, or downscale it")


def image_header(path: Path) -> tuple[str, int]:
    """The Pillow mode and EXIF orientation of an image file, from its header; a file Pillow
    cannot open (empty, not an image) or one above the pixel limit (a decompression bomb) is an
    :class:`ImageReadError` naming it."""
    _pillow_limit()
    try:
        with Image.open(path) as opened:
            return opened.mode, exif_orientation(opened)
    except Image.DecompressionBombError as error:
        raise _bomb(path, error) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        size = path.stat().st_size if path.is_file() else 0
        raise ImageReadError(f"{path}: cannot be read as an image "
                             f"({'an empty file' if size == 0 else error})") from None


def _read_natural(path: Path, palette_as_index: bool) -> tuple[np.ndarray, ImageProperties]:
    """Pixels as every viewer shows them: an EXIF orientation tag is applied, since masks are
    drawn on the displayed image."""
    _pillow_limit()
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) if exif_orientation(opened) != 1 else opened
            mode = image.mode
            if mode == "P" and not palette_as_index:
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif mode == "PA" and not palette_as_index:
                image = image.convert("RGBA")
            elif mode in _CONVERT_TO_RGB_MODES:
                image = image.convert("RGB")
            array = np.asarray(image)
            has_alpha = image.mode in ("RGBA", "LA", "PA")
    except Image.DecompressionBombError as error:
        raise _bomb(path, error) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if file_ending(path) in (".tif", ".tiff"):
            return _read_tiff(path, error)
        raise ImageReadError(f"{path}: cannot be read as an image ({error})") from error
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim == 2:
        array = array[None]
    else:
        array = np.moveaxis(array, -1, 0)
    properties = ImageProperties(
        shape=(int(array.shape[1]), int(array.shape[2])),
        channels=int(array.shape[0]),
        dtype=str(array.dtype),
        has_alpha=has_alpha,
        mode=mode,
    )
    return np.ascontiguousarray(array), properties


def _read_tiff(path: Path, pillow_error: Exception) -> tuple[np.ndarray, ImageProperties]:
    """TIFFs Pillow cannot decode (float, many channels) through tifffile."""
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for corrupt files
        raise ImageReadError(
            f"{path}: cannot be read as an image ({pillow_error}; tifffile: {error})"
        ) from error
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] <= 4:
        array = np.moveaxis(array, -1, 0)
    elif array.ndim != 3:
        raise ImageReadError(f"{path}: has shape {array.shape}; leafnet reads 2D images only")
    properties = ImageProperties(
        shape=(int(array.shape[1]), int(array.shape[2])),
        channels=int(array.shape[0]),
        dtype=str(array.dtype),
        has_alpha=False,
    )
    return np.ascontiguousarray(array), properties


def _read_sitk(path: Path) -> tuple[np.ndarray, ImageProperties]:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise ImageReadError(f"{path}: cannot be read as an image ({message})") from error
    dimension = image.GetDimension()
    size = image.GetSize()
    if dimension == 3 and size[2] == 1:
        array = sitk.GetArrayFromImage(image)[0]
    elif dimension == 2:
        array = sitk.GetArrayFromImage(image)
    else:
        raise ImageReadError(
            f"{path}: is a {dimension}D image of size {size}; leafnet reads 2D images "
            "(or 3D files with a single slice) only"
        )
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    properties = ImageProperties(
        shape=(int(array.shape[1]), int(array.shape[2])),
        channels=int(array.shape[0]),
        dtype=str(array.dtype),
        spacing=tuple(float(v) for v in image.GetSpacing()),
        origin=tuple(float(v) for v in image.GetOrigin()),
        direction=tuple(float(v) for v in image.GetDirection()),
        sitk_dimension=dimension,
    )
    return np.ascontiguousarray(array), properties


def read_array(
    path: str | os.PathLike[str], palette_as_index: bool = False
) -> tuple[np.ndarray, ImageProperties]:
    """Read any supported file as a ``(C, H, W)`` array, with its properties.

    ``palette_as_index`` keeps a palette PNG's indices (what a label means) instead of
    turning it into RGB colours (what an image means). Alpha channels are kept, and
    flagged in the properties, so that callers can reject them with a clear message.
    """
    path = Path(path)
    ending = _check_ending(path, IMAGE_ENDINGS, "image")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if ending in SITK_ENDINGS:
        return _read_sitk(path)
    return _read_natural(path, palette_as_index)


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, ImageProperties]:
    """Read an image file as ``(C, H, W)``; RGBA files are refused (drop the alpha channel)."""
    array, properties = read_array(path)
    if properties.has_alpha:
        raise ImageReadError(
            f"{path}: has an alpha channel ({properties.mode}); save it as RGB or grayscale"
        )
    return array, properties


def read_label(path: str | os.PathLike[str]) -> tuple[np.ndarray, ImageProperties]:
    """Read a label file as an ``(H, W)`` integer array; lossy or multi-channel files fail."""
    path = Path(path)
    _check_ending(path, LABEL_ENDINGS, "label (lossless)")
    array, properties = read_array(path, palette_as_index=True)
    if array.shape[0] != 1:
        raise ImageReadError(
            f"{path}: a label must have one channel but this file has {array.shape[0]}; "
            "save it as a single-channel (grayscale or palette) image"
        )
    label = array[0]
    if not np.issubdtype(label.dtype, np.integer):
        if not np.array_equal(label, np.round(label)):
            raise ImageReadError(f"{path}: label values must be integers, found fractions")
        label = label.astype(np.int32)
    return label, properties


def _write_natural(path: Path, array: np.ndarray) -> None:
    channels = array.shape[0]
    if channels not in (1, 3):
        raise ValueError(f"{path}: natural formats take 1 or 3 channels, got {channels}")
    pixels = array[0] if channels == 1 else np.moveaxis(array, 0, -1)
    ending = file_ending(path)
    if ending in (".tif", ".tiff") and pixels.dtype not in (np.uint8, np.uint16):
        import tifffile

        tifffile.imwrite(path, pixels)
        return
    if pixels.dtype not in (np.uint8, np.uint16) or (pixels.dtype == np.uint16 and channels == 3):
        raise ValueError(f"{path}: cannot store {pixels.dtype} x{channels} in {ending}")
    image = Image.fromarray(np.ascontiguousarray(pixels))
    options = {"quality": 95} if ending in LOSSY_ENDINGS else {}
    image.save(path, **options)


def _write_sitk(path: Path, array: np.ndarray, properties: ImageProperties | None) -> None:
    if array.shape[0] == 1:
        image_array = array[0]
        is_vector = False
    else:
        image_array = np.moveaxis(array, 0, -1)
        is_vector = True
    as_volume = properties is not None and properties.sitk_dimension == 3
    if as_volume:
        image_array = image_array[None]
    image = sitk.GetImageFromArray(np.ascontiguousarray(image_array), isVector=is_vector)
    if properties is not None and properties.spacing is not None:
        image.SetSpacing(properties.spacing)
        image.SetOrigin(properties.origin)
        image.SetDirection(properties.direction)
    sitk.WriteImage(image, str(path), useCompression=True)


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    properties: ImageProperties | None = None,
) -> None:
    """Write a ``(C, H, W)`` image atomically; ``properties`` carries medical geometry."""
    path = Path(path)
    ending = _check_ending(path, IMAGE_ENDINGS, "image")
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a (C, H, W) array, got shape {array.shape}")
    with atomic_path(path) as temporary:
        if ending in SITK_ENDINGS:
            _write_sitk(temporary, array, properties)
        else:
            _write_natural(temporary, array)


def write_label(
    path: str | os.PathLike[str],
    label: np.ndarray,
    properties: ImageProperties | None = None,
) -> None:
    """Write an ``(H, W)`` integer label atomically, as uint8 (uint16 above 255 labels)."""
    path = Path(path)
    _check_ending(path, LABEL_ENDINGS, "label (lossless)")
    if label.ndim != 2:
        raise ValueError(f"{path}: expected an (H, W) label, got shape {label.shape}")
    if label.min(initial=0) < 0:
        raise ValueError(f"{path}: label values must be non-negative")
    dtype = np.uint8 if label.max(initial=0) < 256 else np.uint16
    write_image(path, label.astype(dtype)[None], properties)
