"""Finding images and masks in a source dataset's folders, and pairing them by name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.imageio import IMAGE_ENDINGS, file_ending, strip_ending

MAX_LISTED = 5


def image_files(folder: Path) -> list[Path]:
    """Supported image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and file_ending(p) in IMAGE_ENDINGS
    )


def child(folder: Path, *names: str) -> Path | None:
    """The first sub-folder of ``folder`` whose name matches one of ``names``, ignoring case."""
    if not folder.is_dir():
        return None
    children = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    for name in names:
        if name.lower() in children:
            return children[name.lower()]
    return None


def require_source(source: Path) -> Path:
    source = Path(source).expanduser()
    if not source.is_dir():
        raise LeafnetError(f"{source}: no such folder")
    return source


def layout_error(source: Path, expected: str) -> LeafnetError:
    """An error saying that ``source`` does not look like any supported layout."""
    return LeafnetError(f"{source} does not have a supported layout. Expected:\n{expected}")


def case_id(stem: str, prefix: str = "") -> str:
    """A safe case id: numeric stems become ``prefix0001``; other characters become '_'."""
    if stem.isdigit():
        return f"{prefix}{int(stem):04d}"
    return re.sub(r"[^A-Za-z0-9\-]+", "_", stem).strip("_") or "case"


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:MAX_LISTED])
    more = f" ... and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return shown + more


def pair_by_stem(
    images_dir: Path,
    masks_dir: Path,
    affixes: Sequence[tuple[str, str]] = (("", ""),),
) -> list[tuple[str, Path, Path]]:
    """Match each image to the mask named ``prefix + stem + suffix`` for the first affix that fits.

    Returns ``(image stem, image, mask)`` sorted by stem. Images without a mask and masks
    without an image are an error that names them, since a silent drop would shrink the
    dataset unnoticed.
    """
    images = image_files(images_dir)
    masks = {strip_ending(p.name): p for p in image_files(masks_dir)}
    pairs: list[tuple[str, Path, Path]] = []
    unmatched: list[Path] = []
    used: set[str] = set()
    for image in images:
        stem = strip_ending(image.name)
        names = [f"{prefix}{stem}{suffix}" for prefix, suffix in affixes]
        found = next((name for name in names if name in masks), None)
        if found is None:
            unmatched.append(image)
        else:
            used.add(found)
            pairs.append((stem, image, masks[found]))
    orphans = [path for name, path in sorted(masks.items()) if name not in used]
    if unmatched or orphans:
        patterns = " or ".join(f"'{p}STEM{s}'" for p, s in affixes)
        parts = []
        if unmatched:
            parts.append(f"{len(unmatched)} images in {images_dir} have no mask named "
                         f"{patterns} in {masks_dir}: {_listing(unmatched)}")
        if orphans:
            parts.append(f"{len(orphans)} masks in {masks_dir} have no image: {_listing(orphans)}")
        raise LeafnetError("; ".join(parts) + ". Add the missing files or remove the extra ones.")
    if not pairs:
        raise LeafnetError(f"no images found in {images_dir}")
    return pairs
