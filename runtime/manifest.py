"""The manifest is the source of truth for what we ship: files, hashes, accuracy, parity.

The runtime reads it to find the bundled default model and to verify a model's SHA-256 before
loading it; it never retypes a figure from it.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from fmnist_edge.runtime.errors import ModelError, first_line
from fmnist_edge.runtime.manifest_schema import MAX_MANIFEST_BYTES, check_manifest

MANIFEST_FILE = "manifest.json"


def bundled_dir() -> Path:
    """The artifacts folder inside the installed package (works after a non-editable install)."""
    return Path(str(resources.files("fmnist_edge.artifacts")))


def sha256_file(path: Path) -> str:
    with Path(path).open("rb") as fh:
        return _sha256(fh)


def _sha256(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


Identity = tuple[int, int, int, int]  # device, inode, size, mtime: which file a name pointed to


def identity(path: Path) -> Identity | None:
    """Which file `path` names now (None if none). Exports replace files by renaming new ones over
    them, never by writing in place, so a changed identity means different bytes."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def load_manifest(directory: Path | None = None) -> dict:
    """Read and check the manifest in `directory` (the bundled folder by default).

    Read at most MAX_MANIFEST_BYTES (a 168 MB file once cost 3.7 GB to parse), strictly as UTF-8,
    with NaN and Infinity refused, then checked against the schema (manifest_schema.py) before any
    caller looks inside: every failure is one ModelError line, exit 2, never a KeyError later.
    """
    path = Path(directory or bundled_dir()) / MANIFEST_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(f"no manifest at {path}; run `fmnist-edge export` first") from None
    except OSError as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc.strerror or exc})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ModelError(f"{path}: unreadable manifest (larger than {MAX_MANIFEST_BYTES // 1024} KiB; "
                         "export writes a few KiB)")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: unreadable manifest (not UTF-8: byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; deep nesting recurses
        raise ModelError(f"{path}: unreadable manifest ({first_line(exc)})") from None
    check_manifest(document, path)
    return document


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def entry_for(manifest: dict, filename: str) -> dict | None:
    return next((m for m in manifest.get("models") or [] if m.get("file") == filename), None)


def verify(path: Path, manifest: dict) -> Identity:
    """Refuse a model whose bytes differ from what the manifest beside it records, or that it does not
    list; returns the identity of the file that was hashed, so that the caller can check that it
    loaded that very file (see Classifier).

    An unlisted file in a folder with a manifest is a leftover (say an int8 model from before a
    float-only re-export): running it would pair a stale model with the manifest's threshold.
    """
    entry = entry_for(manifest, Path(path).name)
    if entry is None:
        raise ModelError(
            f"{path}: not listed in the {MANIFEST_FILE} beside it (left over from an earlier export?); "
            "re-export, or move the model to a folder of its own"
        )
    with Path(path).open("rb") as fh:
        st = os.fstat(fh.fileno())
        actual = _sha256(fh)
    if actual != entry["sha256"]:
        raise ModelError(
            f"{path}: SHA-256 {actual[:12]}… does not match the manifest ({entry['sha256'][:12]}…); "
            "the file is corrupt or was replaced — reinstall or re-export it"
        )
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def manifest_beside(path: Path) -> dict | None:
    """The manifest in the folder of `path`, or None when that folder has none.

    A manifest that is there but unreadable is refused rather than skipped: skipping it would
    silently drop the SHA-256 check it exists for.
    """
    path = Path(path)
    if not (path.parent / MANIFEST_FILE).is_file():
        return None
    try:
        return load_manifest(path.parent)
    except ModelError as exc:
        raise ModelError(f"{path}: cannot be checked: {exc}") from None
