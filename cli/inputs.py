"""Turn what a user typed (files, folders, globs, `-`) into a list of image paths, in a stable order.

Folder listings and glob walks ask `stopped()` as they go (cli/walk.py), so a stop request is
honoured during a walk over a huge tree, not only once it is over.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.walk import Stopped, WalkStopped, glob_paths

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
STDIN = "-"  # the photo comes down a pipe: `cat photo.jpg | fmnist-edge classify -`


@dataclass(frozen=True)
class Input:
    shown: str  # the path as the user gave it (or as found in their folder/glob)
    path: Path | None  # None for stdin and for an input that is only an error
    error: str | None = None
    stream: bool = False  # read from a pipe, a device or stdin: a read may wait for the writer

    @property
    def stdin(self) -> bool:
        return self.path is None and self.error is None


def expand(args: list[str], stopped: Stopped = lambda: False) -> list[Input]:
    """Files are taken as given (so a text file named .png is tried and reported); folders yield
    their image files (not recursive), whether named or matched by a pattern, and a pattern's
    matching files are filtered to images the same way. Anything that yields no image is an
    error of its own, so a run never ends "successfully" having classified nothing. Raises
    WalkStopped when `stopped()` turns true before the list is complete."""
    found: list[Input] = []
    for arg in args:
        if stopped():
            raise WalkStopped
        try:
            found.extend(_expand_one(arg, stopped))
        except (OSError, ValueError) as exc:  # a name too long, a folder we may not list, a NUL byte
            found.append(Input(arg, None, f"{arg}: cannot be read ({getattr(exc, 'strerror', None) or exc})"))
    return found


def _expand_one(arg: str, stopped: Stopped) -> list[Input]:
    """What one argument yields; OSError (and ValueError, for a NUL byte) go to the caller."""
    if arg == STDIN:
        return [Input(arg, None, stream=True)]
    path = Path(arg)
    if not arg.strip():
        return [Input(arg, None, '"": empty path (an unset variable in a script?)')]
    if path.is_dir():
        return _folder(arg, path, stopped)
    if path.exists():
        return [Input(arg, path, stream=not _is_regular(path))]
    if not glob.has_magic(arg):
        return [Input(arg, None, f"{arg}: no such file or folder")]
    matches = [Path(m) for m in sorted(glob_paths(arg, stopped))]
    images = [Input(str(m), m) for m in matches if m.is_file() and _is_image_name(m)]
    for folder in (m for m in matches if m.is_dir()):
        images.extend(i for i in _folder(str(folder), folder, stopped) if i.error is None)
    if not images:
        what = "no image files" if matches else "no files"
        return [Input(arg, None, f"{arg}: pattern matches {what}")]
    return sorted(images, key=lambda i: i.shown)


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _is_regular(path: Path) -> bool:
    """False for a pipe, a device or a socket (/dev/stdin, a FIFO): reading one may wait for its writer."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # cannot tell: the reader will say what is wrong with it


def _folder(shown: str, path: Path, stopped: Stopped) -> list[Input]:
    """The image files directly in folder `path`, sorted (FIFOs and devices in it are not images)."""
    names = []
    with os.scandir(path) as entries:
        for entry in entries:
            if stopped():
                raise WalkStopped
            if _is_image_name(Path(entry.name)) and _is_file(entry):
                names.append(entry.name)
    if not names:
        return [Input(shown, None, f"{shown}: folder has no image files")]
    return [Input(str(path / name), path / name) for name in sorted(names)]


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # a link to a file counts, as Path.is_file() counts it
    except OSError:
        return False
