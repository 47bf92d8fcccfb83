"""Glob patterns, `**` included, matched by a walk that always ends and can be stopped.

Why not glob.glob(pattern, recursive=True): it follows every symbolic link to a folder, so a link
to the folder itself or to an ancestor makes `photos/**/*.png` recurse until the path is too long,
listing the same photos thousands of times (the red team's run grew without bound), and it runs as
one call that no stop request can interrupt. Here every folder is entered at most once per pattern
part (folders are compared by device and inode, so a link into a folder already visited is not
followed), and `stopped()` is asked before each folder and between entries, so Ctrl-C ends even a
walk over a huge tree within moments.

The matching is glob's: `*`, `?` and `[...]` within one name (fnmatch), `**` alone as a part for
any number of folders, zero included; names starting with '.' match only a part that starts with '.'.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Iterator

Stopped = Callable[[], bool]


class WalkStopped(Exception):
    """A stop was requested while the walk was still going: its partial result is not an answer."""


def glob_paths(pattern: str, stopped: Stopped) -> list[str]:
    """Every existing path `pattern` matches, each once, spelt as in the pattern (unsorted; glob.glob
    spells them alike, except that it keeps a doubled separator and ends a folder matched by a
    trailing ** with one).
    Raises WalkStopped when `stopped()` turns true, OSError only for nothing (unreadable folders are
    skipped, as glob skips them)."""
    root, parts = _split(pattern)
    found: dict[str, None] = {}  # insertion-ordered set
    visited: set[tuple[int, tuple[int, int] | str]] = set()
    pending: list[tuple[str, int]] = [(root, 0)]
    while pending:
        if stopped():
            raise WalkStopped
        path, index = pending.pop()
        if index == len(parts):
            if path and os.path.lexists(path):
                found[path] = None
            continue
        folder_key = _identity(path or os.curdir)
        if folder_key is None or (index, folder_key) in visited:
            continue  # not a folder, or this part was already tried in it (a link back, a second spelling)
        visited.add((index, folder_key))
        pending.extend(_next_states(path, index, parts, stopped))
    return list(found)


def _next_states(path: str, index: int, parts: list[str], stopped: Stopped) -> Iterator[tuple[str, int]]:
    """The (path, part index) states that matching parts[index] inside folder `path` leads to."""
    part = parts[index]
    last = index + 1 == len(parts)
    if part == "**":
        yield path, index + 1  # ** matches zero folders too
        for name, is_dir in _entries(path, part, stopped):
            if is_dir:
                yield os.path.join(path, name), index  # and then any number more
            elif last:
                yield os.path.join(path, name), index + 1  # a trailing ** matches the files too
    elif glob.has_magic(part):
        for name, is_dir in _entries(path, part, stopped):
            if (is_dir or last) and fnmatch.fnmatch(name, part):
                yield os.path.join(path, name), index + 1
    else:
        yield os.path.join(path, part), index + 1


def _entries(path: str, part: str, stopped: Stopped) -> Iterator[tuple[str, bool]]:
    """(name, is a folder) of the entries in folder `path` a pattern part may match: hidden ones
    only for a part starting with '.'."""
    try:
        entries = os.scandir(path or os.curdir)
    except OSError:  # gone, or not ours to list: glob skips it too
        return
    with entries:
        for entry in entries:
            if stopped():
                raise WalkStopped
            if entry.name.startswith(".") and not part.startswith("."):
                continue
            yield entry.name, _is_dir(entry)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links, as glob does; a link back is caught by the visited set
    except OSError:
        return False


def _identity(path: str) -> tuple[int, int] | str | None:
    """A folder's identity (device, inode), following links; its absolute path where the filesystem
    has no inode numbers; None when it is not a folder."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)


def _split(pattern: str) -> tuple[str, list[str]]:
    """('/' or a drive, or '' for a relative pattern; its parts), repeated separators dropped."""
    drive, rest = os.path.splitdrive(pattern)
    separators = os.sep + (os.altsep or "")
    root = drive + rest[: len(rest) - len(rest.lstrip(separators))]
    parts = [p for p in rest.replace(os.altsep or os.sep, os.sep).split(os.sep) if p]
    collapsed = [p for i, p in enumerate(parts) if not (p == "**" and i and parts[i - 1] == "**")]
    return root, collapsed
