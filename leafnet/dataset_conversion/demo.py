"""The synthetic demo dataset: polyp-like blobs on a textured background, with exact masks.

With two labels each blob has a brighter core (label 2) inside its rim (label 1), stored as
nested regions as nnU-Net writes them: the lesion {1, 2} contains the core {2}, like the optic
disc and cup of REFUGE2.

Every case is drawn from its own generator seeded by ``(seed, index)``, so a case does not
depend on how many cases there are or which worker draws it, and one seed always gives the
same dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from leafnet.dataset_conversion.descriptions import binary_description
from leafnet.dataset_conversion.writer import write_dataset
from leafnet.errors import LeafnetError
from leafnet.imageio import write_image, write_label
from leafnet.verification import VerificationReport

DEFAULT_ID = 999
NESTED_ID = 998
DEFAULT_SEED = 0
DEFAULT_NUM_CASES = 300
DEFAULT_TEST_FRACTION = 0.2


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit standard deviation."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Mucosa-like tissue: a base colour, large-scale shading, fine texture, vessels, vignette."""
    base = np.array([rng.uniform(150, 215), rng.uniform(60, 115), rng.uniform(50, 100)])
    shading = _smooth_noise(rng, size, rng.uniform(20, 40)) * rng.uniform(0.06, 0.14)
    texture = _smooth_noise(rng, size, rng.uniform(1.0, 2.5)) * rng.uniform(0.02, 0.06)
    vessels = np.abs(_smooth_noise(rng, size, rng.uniform(5, 9)))
    vessel_mask = np.clip(1 - vessels / 0.08, 0, 1) * rng.uniform(0.1, 0.3)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    vignette = 1 - rng.uniform(0.3, 0.7) * (xx**2 + yy**2) * 2
    brightness = (1 + shading + texture) * vignette
    image = base[:, None, None] * brightness[None]
    image[1:] *= 1 - vessel_mask[None]
    return image


def _blob(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One polyp-like region: a wobbly disc (its distance from the centre relative to its
    boundary, inside where <= 1) with its own colour, dome shading and texture."""
    radius = rng.uniform(0.06, 0.3) * size
    centre = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    angle = np.arctan2(dy, dx)
    boundary = np.ones_like(angle)
    for harmonic in range(2, 6):
        boundary += rng.uniform(0, 0.18 / harmonic) * np.cos(harmonic * angle + rng.uniform(0, 6.3))
    boundary *= radius * rng.uniform(0.8, 1.0)
    stretch = rng.uniform(0.7, 1.3)
    rotation = rng.uniform(0, np.pi)
    along = dx * np.cos(rotation) + dy * np.sin(rotation)
    across = -dx * np.sin(rotation) + dy * np.cos(rotation)
    distance = np.hypot(along * stretch, across / stretch)
    relative = distance / boundary
    colour = np.array([rng.uniform(170, 250), rng.uniform(90, 170), rng.uniform(70, 150)])
    dome = np.sqrt(np.clip(1 - relative**2, 0, 1))
    offset = radius * 0.3
    highlight = np.exp(-((dx + offset) ** 2 + (dy + offset) ** 2) / (2 * (radius * 0.15) ** 2))
    texture = _smooth_noise(rng, size, rng.uniform(0.8, 3.0)) * rng.uniform(0.03, 0.12)
    shade = 0.75 + rng.uniform(0.15, 0.35) * dome + texture + rng.uniform(0.0, 0.5) * highlight
    return relative, colour[:, None, None] * shade[None]


def synthesize_case(seed: int, index: int, size: int = 256,
                    num_labels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``index``-th demo case for ``seed``: a ``(3, size, size)`` uint8 image and its label
    (1 = blob; with ``num_labels`` 2, 1 = the blob's rim and 2 = its core, drawn from a
    generator of their own so the blobs are those of the one-label demo)."""
    rng = np.random.default_rng([seed, index])
    core_rng = np.random.default_rng([seed, index, 1])
    image = _background(rng, size)
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.choice([0, 1, 1, 1, 1, 2, 2, 3])):
        relative, appearance = _blob(rng, size)
        mask = relative <= 1.0
        image = np.where(mask[None], appearance, image)
        label[mask] = 1
        if num_labels == 2:
            core = relative <= core_rng.uniform(0.35, 0.6)
            tint = core_rng.uniform([1.1, 1.25, 1.3], [1.25, 1.5, 1.6])
            image = np.where(core[None], np.clip(appearance * tint[:, None, None], 0, 255), image)
            label[core] = 2
    noise = rng.normal(0, rng.uniform(1, 6), size=image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8), label


@dataclass(frozen=True)
class DemoCase:
    """A demo case, drawn when the writer asks for it (in a worker process)."""

    case_id: str
    subset: str
    seed: int
    index: int
    size: int
    num_labels: int = 1

    @property
    def has_label(self) -> bool:
        return True

    def write(self, image_path: Path, label_path: Path | None) -> None:
        image, label = synthesize_case(self.seed, self.index, self.size, self.num_labels)
        write_image(image_path, image)
        if label_path is not None:
            write_label(label_path, label)


def demo_cases(seed: int, num_cases: int, test_fraction: float, size: int,
               num_labels: int = 1) -> list[DemoCase]:
    """The cases of a demo dataset: the last ``test_fraction`` of them form the test set."""
    if num_cases < 10:
        raise LeafnetError(f"--num-cases must be at least 10, found {num_cases}")
    if not 0 < test_fraction < 1:
        raise LeafnetError(f"--test-fraction must lie in (0, 1), found {test_fraction}")
    num_test = max(1, round(num_cases * test_fraction))
    return [
        DemoCase(f"demo_{index:04d}", "Ts" if index >= num_cases - num_test else "Tr",
                 seed, index, size, num_labels)
        for index in range(num_cases)
    ]


def convert_demo(
    dataset_id: int = DEFAULT_ID,
    seed: int = DEFAULT_SEED,
    num_cases: int = DEFAULT_NUM_CASES,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    size: int = 256,
    overwrite: bool = False,
    num_processes: int | None = None,
    show_progress: bool = True,
    num_labels: int = 1,
) -> tuple[Path, VerificationReport]:
    """Generate the demo dataset (RGB PNG images, 10% of imagesTr held out for validation);
    ``num_labels`` 2 gives the nested lesion / core set (its own name, LeafnetDemoNested)."""
    if size < 16:
        raise LeafnetError(f"--size {size} is too small for the demo's blobs; use 16 or more "
                           "(256 by default)")
    if num_cases < 5 or not 0 <= test_fraction < 1:
        raise LeafnetError(f"--num-cases {num_cases} / --test-fraction {test_fraction}: the demo "
                           "needs at least 5 cases and a test fraction in [0, 1)")
    if num_labels not in (1, 2):
        raise LeafnetError(f"--num-labels {num_labels}: the demo has 1 (blobs) or 2 (nested "
                           "lesion and core) labels")
    description = binary_description(
        "LeafnetDemo", "polyp", {"rule": "official_test", "val": 0.1, "seed": seed},
        description=f"synthetic polyp-like blobs generated by leafnet (seed {seed}, "
        f"{num_cases} cases of {size}x{size})",
        licence="generated data, no restrictions",
    )
    if num_labels == 2:
        description.name = "LeafnetDemoNested"
        description.labels = {"background": 0, "lesion": 1, "core": 2}
        description.regions = {"lesion": [1, 2], "core": [2]}
        description.extra["description"] = (
            f"synthetic blobs (lesion) with a brighter core, nested regions lesion = {{1, 2}} "
            f"and core = {{2}}, generated by leafnet (seed {seed}, {num_cases} cases of "
            f"{size}x{size})")
    tasks = demo_cases(seed, num_cases, test_fraction, size, num_labels)
    return write_dataset(dataset_id, description, tasks, overwrite, num_processes, show_progress)
