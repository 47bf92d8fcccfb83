"""Publish an export into --out so that at every instant the folder holds one complete export.

The manifest is the commit point: a file counts only when the manifest lists it with its SHA-256,
and the runtime refuses anything else. Models keep their usual names (fmnist_cnn_int8.tflite), so
they cannot be replaced in place while the old manifest still lists the old bytes under that
name. Publishing is therefore two commits:

  1. each new file is renamed from the staging folder to a content-addressed name beside its
     final one (`fmnist_cnn_int8.3fa2b1c0d9e8.tflite`), then manifest A, listing those names, is
     atomically renamed over manifest.json: from here on the new export is the complete one;
  2. each file is linked (or copied) to its usual name, atomically, then manifest B, listing the
     usual names, replaces A; only then are the content-addressed copies and the files the old
     manifest listed but B does not (stale models) removed.

A kill at any point leaves the old export, manifest A's or B's: each complete, each verified
by hash. Staging lives in a hidden folder inside --out (same filesystem, so step 1 is a rename,
and the free-space check covers it); it is removed on every exit path Python sees, and whatever
a SIGKILL leaves is removed by the next export into the folder, under the folder's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fmnist_edge.common.atomic import fsync_file as _fsync
from fmnist_edge.common.atomic import write_text_atomic
from fmnist_edge.common.errors import ExportError
from fmnist_edge.export.manifest import PHOTO_INPUTS_FILE, REFERENCE_FILE
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import EXPORTED
from fmnist_edge.runtime.golden import GOLDEN_FILE
from fmnist_edge.runtime.manifest import MANIFEST_FILE, load_manifest
from fmnist_edge.runtime.manifest_schema import FILE_RECORDS, is_plain_name

STAGING_PREFIX = ".fmnist-edge-staging-"
TEMP_MARK = ".tmp"  # common/atomic.py's temporary files: ".<name>.<random>.tmp<suffix>"
Hook = Callable[[str], None]  # called at each step's name; tests kill the process there
PUBLISHED_NAMES = frozenset({f.filename for f in EXPORTED} | {GOLDEN_FILE, REFERENCE_FILE, PHOTO_INPUTS_FILE})


def _no_hook(step: str) -> None:
    pass


@contextlib.contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder inside out_dir, removed when the block ends, however it ends."""
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(out_dir: Path) -> list[str]:
    """What killed exports left in out_dir: staging folders, temporaries of our atomic writes, and
    content-addressed copies the current manifest does not list. Only names export writes are
    touched, never a user's own files. Call only under the folder's lock."""
    listed = set(_listed(out_dir))
    removed = []
    for entry in Path(out_dir).iterdir():
        name = entry.name
        if name.startswith(STAGING_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif _is_our_temporary(name) or (_is_content_addressed(name) and name not in listed):
            entry.unlink(missing_ok=True)
        else:
            continue
        removed.append(name)
    return removed


def check_room(out_dir: Path, need: int) -> None:
    """Refuse before any work when out_dir's filesystem has less than `need` bytes free."""
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise ExportError(f"--out {out_dir}: {free / 2**20:.0f} MiB free, and the export needs about "
                          f"{need / 2**20:.0f} MiB; free some space or choose another folder")


def content_name(name: str, sha256: str) -> str:
    """fmnist_cnn_int8.tflite + its hash -> fmnist_cnn_int8.3fa2b1c0d9e8.tflite (the suffix, and so the kind, kept)."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{sha256[:12]}.{suffix}" if dot else f"{name}.{sha256[:12]}"


def publish(out_dir: Path, staging: Path, manifest: dict, hook: Hook = _no_hook) -> None:
    """Move the staged files that `manifest` lists into out_dir in the two commits described above.

    `manifest` names files by their usual names, with the SHA-256 of the staged bytes; every
    listed file is either staged (new) or already in out_dir (kept from the previous export).
    """
    out_dir = Path(out_dir)
    previous = set(_listed(out_dir))
    staged = {name: sha for name, sha in _records(manifest) if (staging / name).is_file()}
    renamed = {name: content_name(name, sha) for name, sha in staged.items()}
    for name, target in renamed.items():
        _fsync(staging / name)
        os.replace(staging / name, out_dir / target)
        hook(f"moved {name}")
    _write_manifest(out_dir, _renamed(manifest, renamed))
    hook("manifest A")
    for name, target in renamed.items():
        _link_or_copy(out_dir / target, out_dir / name)
        hook(f"linked {name}")
    _write_manifest(out_dir, manifest)
    hook("manifest B")
    keep = {name for name, _ in _records(manifest)} | {MANIFEST_FILE}
    # Stale: what the old manifest listed, and any file of ours it did not (left by an export killed
    # after its manifest A): the runtime would refuse them as leftovers anyway.
    ours = {name for name in PUBLISHED_NAMES if (out_dir / name).is_file()}
    for name in set(renamed.values()) | ((previous | ours) - keep):
        if is_plain_name(name) and name not in keep:
            (out_dir / name).unlink(missing_ok=True)
    hook("cleaned")


def _records(manifest: dict) -> list[tuple[str, str]]:
    """(file, sha256) of every file a manifest lists: models, golden data, reference scores, photo inputs."""
    found = [(m["file"], m["sha256"]) for m in manifest.get("models") or []]
    found += [(manifest[k]["file"], manifest[k]["sha256"]) for k in FILE_RECORDS if manifest.get(k)]
    return found


def _listed(out_dir: Path) -> list[str]:
    """The files the manifest now in out_dir lists; none when it has none or it does not pass the schema."""
    if not (Path(out_dir) / MANIFEST_FILE).is_file():
        return []
    try:
        return [name for name, _ in _records(load_manifest(out_dir))]
    except ModelError:
        return []


def _renamed(manifest: dict, names: dict[str, str]) -> dict:
    copy = json.loads(json.dumps(manifest))
    for entry in copy.get("models") or []:
        entry["file"] = names.get(entry["file"], entry["file"])
    for key in FILE_RECORDS:
        if copy.get(key):
            copy[key]["file"] = names.get(copy[key]["file"], copy[key]["file"])
    if copy.get("default_model"):
        copy["default_model"] = names.get(copy["default_model"], copy["default_model"])
    return copy


def _is_content_addressed(name: str) -> bool:
    """`fmnist_cnn_int8.3fa2b1c0d9e8.tflite` for one of the names export writes."""
    stem, _, rest = name.partition(".")
    digest, _, suffix = rest.partition(".")
    return (f"{stem}.{suffix}" in PUBLISHED_NAMES and len(digest) == 12
            and all(c in "0123456789abcdef" for c in digest))


def _is_our_temporary(name: str) -> bool:
    """`.fmnist_cnn_int8.tflite.k3j4h5.tmp.tflite` (common/atomic.py) or `.golden.npz.link.tmp` (below)."""
    return TEMP_MARK in name and any(name.startswith(f".{known}.") for known in PUBLISHED_NAMES | {MANIFEST_FILE})


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    write_text_atomic(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    _fsync_dir(out_dir)  # the rename itself reaches the disk before anything is removed


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` hold `source`'s bytes, atomically: a hard link renamed into place, or, where
    the filesystem has no hard links (FAT on an SD card), a copy written beside it and renamed."""
    temporary = target.with_name(f".{target.name}.link{TEMP_MARK}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
        _fsync(temporary)
    try:
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
