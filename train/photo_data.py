"""The 700 labelled training photos, fetched from their CC0 source and checked file by file.

Why: photo-domain training (`train --photos`) needs the photos we keep locally in
shared/photos-train, and a user elsewhere must be able to rebuild that folder exactly. We ship only
the labels (train/photos_train.csv, a copy of that folder's labels.csv); the photos themselves are
downloaded from the source repository at a pinned commit, so every byte is checked against the
SHA-256 recorded when the folder was made, and converted the same way it was made.

Source and licence (from shared/photos-train/README.md):
- github.com/alexeygrigorev/clothing-dataset at commit 7ed86a9cc56763b6acb35e41cb35184e43a5d218;
  its LICENSE is CC0 1.0 Universal ("can be freely used for any purpose, including commercial").
- 700 photos taken at home (floors, beds, hangers): 549 `train`, 151 `val`, split by the
  contributor's `sender_id`, so no photographer is in both splits (nor, for `train`, in shared/photos).

Class rules, in short: 0 T-shirt/top (tees, polos, tank tops); 1 Trouser (long trousers, jeans,
leggings; no shorts); 2 Pullover (no front opening; half-zips allowed); 3 Dress (no skirts or
playsuits); 4 Coat (jackets, coats, blazers, parkas with a front opening); 5 Sandal (open shoes);
6 Shirt (button-down or collared shirts, blouses); 7 Sneaker; 8 Bag has no photos; 9 Ankle boot
(ankle height or higher). Shoes, pullovers taken from `Longsleeve` and every relabelled photo were
labelled by hand (`labelled_by`); `view` is set for shoes only. Ambiguous items (full-zip hoodies,
cardigans, vests, shirt dresses, clogs, slippers, formal shoes...) and photos of several garments,
worn garments, or items mostly hidden, tiny or dark were dropped.

How each file is made from its original: EXIF orientation applied, converted to RGB, shrunk so
the longest side is at most 512 px (LANCZOS), saved as JPEG quality 90 without EXIF. The JPEG
bytes depend on Pillow's libjpeg, so only the originals are hash-checked, not the results.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.common.atomic import write_bytes_atomic, write_text_atomic
from fmnist_edge.common.errors import DataError
from fmnist_edge.runtime.photo_labels import LABELS_FILE
from fmnist_edge.train.download import download

ENV_MIRROR = "FMNIST_EDGE_PHOTOS_MIRROR"
SOURCE_REPO = "alexeygrigorev/clothing-dataset"
SOURCE_COMMIT = "7ed86a9cc56763b6acb35e41cb35184e43a5d218"
RAW_BASE = "https://raw.githubusercontent.com/{repo}/{commit}"
SHIPPED_LABELS = Path(__file__).with_name("photos_train.csv")  # package data; tests point it elsewhere
RECORD_FILE = ".fetched"  # "<source_sha256>  <file>" per line: which originals are already converted
COLUMNS = ("file", "label", "class_name", "split", "source_repo", "source_commit", "source_path",
           "source_sha256", "sender_id", "license", "labelled_by", "view")
MAX_SIDE = 512
JPEG_QUALITY = 90
MAX_ORIGINAL_BYTES = 32 << 20  # the originals are phone photos; anything larger is not one of them
DEADLINE = 120.0  # seconds per photo: the largest originals (a few MB) need 50 KB/s to make it
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PhotoSource:
    """One row of the labels file, reduced to what fetching needs."""

    file: str  # name in the output folder
    source_repo: str
    source_commit: str
    source_path: str  # path inside the source repository at source_commit
    source_sha256: str  # of the original bytes, before conversion


def load_table(path: Path | None = None) -> list[PhotoSource]:
    """Read and check the shipped labels file, so a damaged install fails here and not mid-download."""
    path = path or SHIPPED_LABELS
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the photo table {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if missing:
        raise DataError(f"{path}: lacks the column(s) {', '.join(missing)}; reinstall fmnist-edge")
    out: list[PhotoSource] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        photo = PhotoSource(*(str(row.get(k) or "").strip() for k in
                              ("file", "source_repo", "source_commit", "source_path", "source_sha256")))
        source = Path(photo.source_path)
        # The file name becomes a path in the user's folder and source_path part of a URL: neither may escape.
        if (not photo.file or Path(photo.file).name != photo.file or photo.file in seen
                or photo.file in (LABELS_FILE, RECORD_FILE)):
            raise DataError(f"{path}:{n}: file {photo.file!r} is empty, repeated or not a plain file name")
        if not photo.source_path or source.is_absolute() or ".." in source.parts:
            raise DataError(f"{path}:{n}: source_path {photo.source_path!r} is not a path inside the repository")
        if not _SHA256.fullmatch(photo.source_sha256):
            raise DataError(f"{path}:{n}: source_sha256 {photo.source_sha256!r} is not a SHA-256 hex digest")
        seen.add(photo.file)
        out.append(photo)
    if not out:
        raise DataError(f"{path}: has no rows")
    return out


def source_base(photo: PhotoSource, mirror: str | None = None) -> str:
    """The argument, then $FMNIST_EDGE_PHOTOS_MIRROR, then GitHub's raw files at the row's pinned commit.

    A mirror replaces the whole base: it must hold the repository's files under the same paths
    (`<mirror>/images/<id>.jpg`). The hash check makes any mirror as trustworthy as the source.
    """
    base = mirror or os.environ.get(ENV_MIRROR) or RAW_BASE.format(repo=photo.source_repo, commit=photo.source_commit)
    return base.rstrip("/")


def source_url(photo: PhotoSource, mirror: str | None = None) -> str:
    return f"{source_base(photo, mirror)}/{urllib.parse.quote(photo.source_path)}"


def convert(original: bytes, name: str) -> bytes:
    """Make the training photo from its original, step for step as shared/photos-train was made.

    Orientation first, so the 512 px limit applies to the photo as it is seen; the image is decoded
    in full (no JPEG draft scaling), because draft mode would give different pixels.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(original)) as im:
            upright = ImageOps.exif_transpose(im)
            rgb = upright.convert("RGB")
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=JPEG_QUALITY)  # no exif= or icc_profile=: neither is carried over
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{name}: the original passed its SHA-256 check but Pillow cannot convert it: {exc}") from None
    return buffer.getvalue()


def fetch_photos(out: Path, mirror: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Fill `out` with the labelled photos and their labels.csv; return `out`, ready for `train --photos`.

    A rerun fetches only photos that are missing or whose original is not recorded as converted, so
    an interrupted run resumes. labels.csv is written last: a folder that has it is complete.
    Every failure is a DataError with one line; a photo that failed is never left under its name.
    """
    photos = load_table()
    labels = out / LABELS_FILE
    try:
        shipped = SHIPPED_LABELS.read_bytes()
        edited = labels.is_file() and labels.read_bytes() != shipped
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot use {out}: {exc.strerror or exc}") from None
    if edited:
        # Someone edited it (their own photos added?): overwriting would silently drop their rows.
        raise DataError(f"{labels} differs from the shipped photo labels; move it away or choose another folder")
    record_path = out / RECORD_FILE
    done = _read_record(record_path)
    todo = [p for p in photos if done.get(p.file) != p.source_sha256 or not (out / p.file).is_file()]
    if todo:
        log(f"fetching {len(todo)} of {len(photos)} photos from {source_base(todo[0], mirror)} into {out}")
        _fetch_all(todo, out, record_path, mirror)
    try:
        # Compact the record to exactly this table, then the labels: the folder is now complete.
        write_text_atomic(record_path, "".join(f"{p.source_sha256}  {p.file}\n" for p in photos))
        write_bytes_atomic(labels, shipped)
    except OSError as exc:
        raise DataError(f"cannot write {labels}: {exc.strerror or exc}") from None
    log(f"{len(photos)} photos in {out}: {len(todo)} fetched, {len(photos) - len(todo)} already there")
    return out


def _fetch_all(todo: list[PhotoSource], out: Path, record_path: Path, mirror: str | None) -> None:
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress

    # stderr: the command's stdout stays its one result line. The originals are downloaded into a
    # scratch folder, never into `out`, whose files are all converted photos.
    with (Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(stderr=True)) as bar,
          tempfile.TemporaryDirectory(prefix="fmnist-edge-photo-") as scratch):
        task = bar.add_task("photos", total=len(todo))
        original = Path(scratch) / "original"
        for photo in todo:
            try:
                download(source_url(photo, mirror), original, sha256=photo.source_sha256,
                         max_bytes=MAX_ORIGINAL_BYTES, deadline=DEADLINE)
            except DataError as exc:
                raise DataError(f"{photo.file}: {exc}; check the network or set ${ENV_MIRROR}; "
                                "run again to resume") from None
            target = out / photo.file
            try:
                write_bytes_atomic(target, convert(original.read_bytes(), photo.file))
                # Appended only after the photo has its name; a torn last line is ignored on reading.
                with record_path.open("a", encoding="utf-8") as record:
                    record.write(f"{photo.source_sha256}  {photo.file}\n")
            except OSError as exc:
                raise DataError(f"cannot write {target}: {exc.strerror or exc}") from None
            bar.advance(task)


def _read_record(path: Path) -> dict[str, str]:
    """file -> source hash of the originals already converted; only complete lines count."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        return {}  # unreadable: everything is fetched again, which is slow but right
    done: dict[str, str] = {}
    for line in text.split("\n")[:-1]:  # the part after the last newline is a torn write
        digest, sep, file = line.partition("  ")
        if sep and _SHA256.fullmatch(digest) and file:
            done[file] = digest
    return done
