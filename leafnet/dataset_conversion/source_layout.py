"""Finding images and masks in a source dataset's folders, and pairing them by name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.imageio import IMAGE_ENDINGS, LOSSY_ENDINGS, file_ending, strip_ending

MAX_LISTED = 5


def image_files(folder: Path, note_skipped: bool = False) -> list[Path]:
    """Supported image files directly in ``folder``, sorted by name (hidden files skipped).

    With ``note_skipped``, other files (Thumbs.db, scripts, ...) get a one-line note, and a
    folder holding only sub-folders is an error that says how to proceed."""
    entries = sorted(folder.iterdir())
    images = [p for p in entries if p.is_file() and not p.name.startswith(".")
              and file_ending(p) in IMAGE_ENDINGS]
    if note_skipped:
        others = [p for p in entries if p.is_file() and not p.name.startswith(".")
                  and p not in images]
        if others:
            print(f"note: skipped {len(others)} files in {folder} that are not images: "
                  f"{_listing(others)}", flush=True)
        folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        if not images and folders:
            raise LeafnetError(
                f"{folder} holds only sub-folders ({_listing(folders)}), no images; point "
                "--images/--masks at the folders that hold the files, or flatten them into one "
                "folder first (e.g. find SRC -type f -exec cp {} DEST/ \\;)")
    return images


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


def _one_mask_per_stem(masks: list[Path]) -> dict[str, Path]:
    """Masks by stem. Two files for one stem (``X_lesion.bmp`` and ``X_lesion.jpg``): the one
    lossless file is taken, with a note; several lossless ones are an error naming them."""
    by_stem: dict[str, list[Path]] = {}
    for path in masks:
        by_stem.setdefault(strip_ending(path.name), []).append(path)
    chosen = {}
    for stem, paths in by_stem.items():
        if len(paths) == 1:
            chosen[stem] = paths[0]
            continue
        lossless = [p for p in paths if file_ending(p) not in LOSSY_ENDINGS]
        if len(lossless) != 1:
            raise LeafnetError(
                f"{len(paths)} mask files share the name {stem} ({_listing(paths)}) and leafnet "
                "cannot tell which is meant; remove all but one")
        print(f"note: {stem}: took the lossless {lossless[0].name} over "
              f"{', '.join(p.name for p in paths if p != lossless[0])}", flush=True)
        chosen[stem] = lossless[0]
    return chosen


def _affix_hint(unmatched: Sequence[Path], orphans: Sequence[Path]) -> str:
    """``--mask-suffix X`` (or prefix) when every unmatched mask is an image stem plus one
    common suffix (or prefix)."""
    stems = {strip_ending(p.name) for p in unmatched}
    names = [strip_ending(p.name) for p in orphans]
    if not stems or not names:
        return ""
    suffixes = {next((n[len(s):] for s in stems if n.startswith(s) and n != s), None)
                for n in names}
    if len(suffixes) == 1 and None not in suffixes:
        return f"give the masks' suffix with --mask-suffix '{suffixes.pop()}'"
    prefixes = {next((n[:-len(s)] for s in stems if n.endswith(s) and n != s), None)
                for n in names}
    if len(prefixes) == 1 and None not in prefixes:
        return f"give the masks' prefix with --mask-prefix '{prefixes.pop()}'"
    return ""


def split_shared_folder(files: list[Path], affixes: Sequence[tuple[str, str]]
                        ) -> tuple[list[Path], list[Path]]:
    """Images and masks kept side by side in one folder (``x.jpg`` beside ``x@.png``): a file
    named ``prefix + stem + suffix`` of another file's stem, for an affix that is not empty, is
    a mask; the rest are images."""
    stems = {strip_ending(path.name) for path in files}
    is_mask = {path: any(prefix or suffix for prefix, suffix in affixes) and any(
        strip_ending(path.name) == f"{prefix}{stem}{suffix}" for prefix, suffix in affixes
        if prefix or suffix for stem in stems if stem != strip_ending(path.name))
        for path in files}
    return ([path for path in files if not is_mask[path]],
            [path for path in files if is_mask[path]])


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
    images = image_files(images_dir, note_skipped=True)
    mask_files = image_files(masks_dir, note_skipped=True)
    if images_dir.resolve() == masks_dir.resolve():
        images, mask_files = split_shared_folder(images, affixes)
    masks = _one_mask_per_stem(mask_files)
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
        hint = _affix_hint(unmatched, orphans)
        raise LeafnetError("; ".join(parts) + ". Add the missing files or remove the extra ones"
                           + (f", or {hint}" if hint else "") + ".")
    if not pairs:
        raise LeafnetError(f"no images found in {images_dir}")
    return pairs
