"""A synthetic REFUGE2-like fundus set: large colour fundus photographs with a small optic disc
and a smaller cup inside it, as nested regions (disc = {1, 2} contains cup = {2}, REFUGE2's
coding in leafnet).

What makes REFUGE2 hard for whole-image resizing is kept: the disc spans 14-19% of the image
side (REFUGE2: about 350-400 px of 2124 px) and the cup 30-70% of the disc, so at 128 px the
cup is 6-17 px across. The rest is there so that the images are not trivially separable: the
circular field of view on black, orange-red retina with shading and texture, vessels leaving the
disc, a darker macula beside it, a disc brighter and yellower than the retina and a cup paler
still, with soft edges, on either side (left or right eye).

Every case is drawn from a generator seeded by ``(seed, index)``, as the demo's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from leafnet.dataset_conversion.descriptions import RGB_CHANNELS
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.errors import LeafnetError
from leafnet.imageio import write_image, write_label
from leafnet.raw_format import DatasetDescription
from leafnet.verification import VerificationReport

DEFAULT_ID = 997
DEFAULT_NUM_CASES = 70
DEFAULT_SIZE = 2048
DEFAULT_TEST_FRACTION = 2 / 7
WORK_SIZE = 512


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal((size, size)), sigma)
    return (field - field.mean()) / (field.std() + 1e-8)


def _ellipse(yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, radii: np.ndarray,
             rotation: float) -> np.ndarray:
    """Relative distance from ``centre`` (1 on the ellipse's boundary)."""
    dy, dx = yy - centre[0], xx - centre[1]
    along = dx * np.cos(rotation) + dy * np.sin(rotation)
    across = -dx * np.sin(rotation) + dy * np.cos(rotation)
    return np.hypot(along / radii[1], across / radii[0])


def synthesize_fundus(seed: int, index: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """The ``index``-th fundus case: a ``(3, size, size)`` uint8 image and its label (0
    background, 1 disc rim, 2 cup). Textures are drawn at 512 px and upsampled (a 2048 px
    Gaussian field per case would take seconds); the disc and cup edges are exact at ``size``."""
    rng = np.random.default_rng([seed, index])
    work = min(size, WORK_SIZE)
    scale = size / work
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.hypot(yy - size / 2, xx - size / 2) / (size * rng.uniform(0.45, 0.49))
    inside = np.clip((1 - field) * size / 8, 0, 1)

    def upsampled(array: np.ndarray) -> np.ndarray:
        if work == size:
            return array.astype(np.float32)
        from PIL import Image

        return np.asarray(Image.fromarray(array.astype(np.float32)).resize(
            (size, size), Image.Resampling.BILINEAR))

    shading = upsampled(_noise(rng, work, rng.uniform(30, 60)) * rng.uniform(0.08, 0.15))
    texture = upsampled(_noise(rng, work, rng.uniform(1.0, 2.0)) * rng.uniform(0.02, 0.05))
    right_eye = rng.random() < 0.5
    centre = np.array([size * rng.uniform(0.42, 0.58),
                       size * (rng.uniform(0.62, 0.70) if right_eye else rng.uniform(0.30, 0.38))])
    disc_radius = size * rng.uniform(0.07, 0.095)
    disc_radii = disc_radius * np.array([rng.uniform(1.0, 1.12), rng.uniform(0.9, 1.0)])
    rotation = rng.uniform(-0.3, 0.3)
    cup_ratio = rng.uniform(0.3, 0.7)
    cup_shift = np.array([0.0, (1 if right_eye else -1) * disc_radius * rng.uniform(0, 0.15)])
    disc = _ellipse(yy, xx, centre, disc_radii, rotation)
    cup = _ellipse(yy, xx, centre + cup_shift * (1 - cup_ratio),
                   disc_radii * cup_ratio * rng.uniform(0.9, 1.05, 2), rotation)
    macula_centre = centre + np.array([size * rng.uniform(-0.03, 0.03),
                                       (-1 if right_eye else 1) * 5 * disc_radius])
    macula = np.exp(-_ellipse(yy, xx, macula_centre, np.array([1.0, 1.0]) * disc_radius * 1.2,
                              0.0) ** 2)
    wy, wx = np.mgrid[0:work, 0:work].astype(np.float32) * scale
    angle = np.arctan2(wy - centre[0], wx - centre[1])
    radius = np.hypot(wy - centre[0], wx - centre[1]) / size
    wobble = _noise(rng, work, 6.0) * 0.35
    branches = rng.integers(5, 9)
    vessel_phase = np.cos(branches * angle + wobble + rng.uniform(0, 6.3))
    vessels = upsampled(np.clip(1 - np.abs(vessel_phase) / 0.12, 0, 1)
                        * np.clip(1 - radius / 0.55, 0, 1) * rng.uniform(0.25, 0.45))
    base = np.array([rng.uniform(175, 225), rng.uniform(65, 105), rng.uniform(25, 55)],
                    dtype=np.float32)
    brightness = (1 + shading + texture) * (1 - 0.25 * field ** 2)
    image = base[:, None, None] * brightness[None]
    image *= 1 - macula[None] * rng.uniform(0.2, 0.35)
    image[1:] *= 1 - vessels[None]
    image[0] *= 1 - 0.4 * vessels
    rim_colour = np.array([rng.uniform(225, 250), rng.uniform(150, 190), rng.uniform(90, 130)])
    cup_colour = np.array([rng.uniform(240, 255), rng.uniform(205, 235), rng.uniform(150, 190)])
    disc_weight = np.clip((1 - disc) * disc_radius / 6, 0, 1)
    cup_weight = np.clip((1 - cup) * disc_radius * cup_ratio / 10, 0, 1)
    image = image * (1 - disc_weight[None]) + rim_colour[:, None, None] * (
        1 + texture[None]) * disc_weight[None]
    image = image * (1 - cup_weight[None]) + cup_colour[:, None, None] * (
        1 + texture[None]) * cup_weight[None]
    image[1:] *= 1 - 0.7 * vessels[None] * disc_weight[None]
    image *= inside[None]
    noise = rng.normal(0, rng.uniform(1, 4), size=image.shape).astype(np.float32)
    label = np.zeros((size, size), dtype=np.uint8)
    label[disc <= 1] = 1
    label[(cup <= 1) & (disc <= 1)] = 2
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8), label


@dataclass(frozen=True)
class FundusCase:
    """A fundus case, drawn when the writer asks for it (in a worker process)."""

    case_id: str
    subset: str
    seed: int
    index: int
    size: int

    @property
    def has_label(self) -> bool:
        return True

    def write(self, image_path: Path, label_path: Path | None) -> None:
        image, label = synthesize_fundus(self.seed, self.index, self.size)
        write_image(image_path, image)
        if label_path is not None:
            write_label(label_path, label)


def convert_fundus(dataset_id: int = DEFAULT_ID, seed: int = 0,
                   num_cases: int = DEFAULT_NUM_CASES,
                   test_fraction: float = DEFAULT_TEST_FRACTION, size: int = DEFAULT_SIZE,
                   overwrite: bool = False, num_processes: int | None = None,
                   show_progress: bool = True) -> tuple[Path, VerificationReport]:
    """Generate the fundus set (RGB PNG, nested regions disc and cup; by default 50 training
    and 20 test images of 2048 px, 10% of the training images held out for validation)."""
    if size < 128:
        raise LeafnetError(f"--size {size}: the fundus set needs at least 128 px, so that the "
                           "cup spans a few pixels")
    if num_cases < 5 or not 0 < test_fraction < 1:
        raise LeafnetError(f"--num-cases {num_cases} / --test-fraction {test_fraction}: the "
                           "fundus set needs at least 5 cases and a test fraction in (0, 1)")
    num_test = max(1, round(num_cases * test_fraction))
    cases = [FundusCase(f"fundus_{index:04d}", "Ts" if index >= num_cases - num_test else "Tr",
                        seed, index, size) for index in range(num_cases)]
    description = DatasetDescription(
        name="LeafnetFundus", channel_names=RGB_CHANNELS,
        labels={"background": 0, "disc": 1, "cup": 2}, num_training=0, file_ending=".png",
        image_file_ending=".png", split={"rule": "official_test", "val": 0.1, "seed": seed},
        regions={"disc": [1, 2], "cup": [2]},
        extra={"description": f"synthetic REFUGE2-like fundus photographs generated by leafnet "
               f"(seed {seed}, {num_cases} cases of {size}x{size}): optic disc and cup as "
               "nested regions, disc = {1, 2} contains cup = {2}",
               "licence": "generated data, no restrictions"})
    return write_dataset(dataset_id, description, cases, overwrite, num_processes, show_progress)
