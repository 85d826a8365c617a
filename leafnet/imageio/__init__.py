"""Reading and writing 2D images and labels in every format the raw dataset allows.

Arrays are channel-first: images are ``(C, H, W)``, labels ``(H, W)``. Natural formats
(PNG, BMP, TIFF, JPEG) go through Pillow, with scikit-image/tifffile for TIFFs Pillow cannot
open; medical formats (NIfTI, MHA, NRRD) go through SimpleITK and keep their geometry in
:class:`ImageProperties` so that a prediction can be written back with it.
"""

from leafnet.imageio.endings import (
    IMAGE_ENDINGS,
    LABEL_ENDINGS,
    LOSSY_ENDINGS,
    SITK_ENDINGS,
    canonical_ending,
    file_ending,
    strip_ending,
)
from leafnet.imageio.properties import ImageProperties
from leafnet.imageio.read_write import (
    ImageReadError,
    exif_orientation,
    read_array,
    read_image,
    read_label,
    write_image,
    write_label,
)

__all__ = [
    "IMAGE_ENDINGS",
    "LABEL_ENDINGS",
    "LOSSY_ENDINGS",
    "SITK_ENDINGS",
    "ImageProperties",
    "ImageReadError",
    "canonical_ending",
    "exif_orientation",
    "file_ending",
    "read_array",
    "read_image",
    "read_label",
    "strip_ending",
    "write_image",
    "write_label",
]
