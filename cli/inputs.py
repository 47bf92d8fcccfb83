"""Turn what a user typed (files, folders, globs) into a list of image paths, in a stable order."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


@dataclass(frozen=True)
class Input:
    shown: str  # the path as the user gave it (or as found in their folder/glob)
    path: Path | None
    error: str | None = None


def expand(args: list[str]) -> list[Input]:
    """Files are taken as given (so a text file named .png is tried and reported); folders yield
    their image files (not recursive), whether named or matched by a pattern, and a pattern's
    matching files are filtered to images the same way. Anything that yields no image is an
    error of its own, so a run never ends "successfully" having classified nothing."""
    found: list[Input] = []
    for arg in args:
        try:
            found.extend(_expand_one(arg))
        except (OSError, ValueError) as exc:  # a name too long, a folder we may not list, a NUL byte
            found.append(Input(arg, None, f"{arg}: cannot be read ({getattr(exc, 'strerror', None) or exc})"))
    return found


def _expand_one(arg: str) -> list[Input]:
    """What one argument yields; OSError (and ValueError, for a NUL byte) go to the caller."""
    path = Path(arg)
    if not arg.strip():
        return [Input(arg, None, '"": empty path (an unset variable in a script?)')]
    if path.is_dir():
        return _folder(arg, path)
    if path.exists():
        return [Input(arg, path)]
    if not glob.has_magic(arg):
        return [Input(arg, None, f"{arg}: no such file or folder")]
    matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))]
    images = [Input(str(m), m) for m in matches if m.is_file() and _is_image_name(m)]
    for folder in (m for m in matches if m.is_dir()):
        images.extend(i for i in _folder(str(folder), folder) if i.error is None)
    if not images:
        what = "no image files" if matches else "no files"
        return [Input(arg, None, f"{arg}: pattern matches {what}")]
    return sorted(images, key=lambda i: i.shown)


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _folder(shown: str, path: Path) -> list[Input]:
    images = sorted(p for p in path.iterdir() if p.is_file() and _is_image_name(p))
    if not images:
        return [Input(shown, None, f"{shown}: folder has no image files")]
    return [Input(str(p), p) for p in images]
