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
    their image files (not recursive); a pattern that matches nothing is an error of its own."""
    found: list[Input] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                found.append(Input(arg, None, f"{arg}: folder has no image files"))
            found.extend(Input(str(p), p) for p in images)
        elif path.exists():
            found.append(Input(arg, path))
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                found.append(Input(arg, None, f"{arg}: pattern matches no files"))
            found.extend(Input(m, Path(m)) for m in matches if Path(m).is_file())
        else:
            found.append(Input(arg, None, f"{arg}: no such file or folder"))
    return found
