"""A folder of labelled photos: `labels.csv` beside the images, as in shared/photos and photos-train.

Columns: `file` and either `label` (0-9) or `class_name` (one of the ten), or both, which must then
agree; an optional `split` column assigns every row to `train` or `val`. Evaluation and
photo-domain training read the same file through this one reader, so a folder that trains also
evaluates, and every mistake in it is reported the same way: one line naming the file and the row.

The whole file is checked before any row is used, whatever split is asked for, because a mistake
in one split spoils the other: a photo listed twice is trained or scored twice, and a photo in
both splits makes the validation figure (which picks the training epoch) a training figure. So:

- a file name, or a file (a hard or symbolic link to another listed photo), appears once;
- `label` is ASCII digits 0-9 and nothing else (`²` and `３` pass str.isdigit(), which is no test);
- with a `split` column, every row says exactly `train` or `val`: `Train`, `trian`, `test` or an
  empty value are refused, naming the row, rather than leaving the row silently out of both.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.runtime.errors import FmnistEdgeError
from fmnist_edge.runtime.spec import CLASS_NAMES

LABELS_FILE = "labels.csv"
MAX_LABELS_BYTES = 16 * 1024 * 1024  # far above any real folder; a larger file is not a labels file
SPLITS = ("train", "val")  # the only split values; train/photos.py trains on the first, picks epochs on the second


@dataclass(frozen=True)
class LabelledPhoto:
    file: str
    label: int
    split: str  # "" when the file has no split column


def read_labels(path: Path, split: str | None = None, require_files: bool = False,
                folder: Path | None = None) -> list[LabelledPhoto]:
    """Rows of a labels file, every one checked; `split` keeps only that split's rows; `require_files`
    checks every listed photo exists in `folder` (training does, so it never stops halfway).
    `folder` holds the photos: the labels file's own folder unless given. Any mistake raises
    FmnistEdgeError, one line naming the file and the row; nothing else is raised."""
    folder = path.parent if folder is None else folder
    if split is not None and split not in SPLITS:
        raise FmnistEdgeError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
    columns, rows = _read_rows(path)
    if "file" not in columns or not columns & {"label", "class_name"}:
        raise FmnistEdgeError(f"{path}: needs a header with 'file' and 'label' (0-9) or 'class_name' columns")
    if split is not None and "split" not in columns:
        raise FmnistEdgeError(f"{path}: has no 'split' column, so --split {split} cannot be applied")
    photos = list(_checked_rows(path, rows, has_split="split" in columns))
    _refuse_repeats(path, photos, folder)
    out = []
    for n, photo in photos:
        if split is not None and photo.split != split:
            continue
        if require_files and not _is_file(folder / photo.file):
            raise FmnistEdgeError(f"{path}:{n}: {photo.file} is missing from {folder}")
        out.append(photo)
    if not out:
        which = f" in split {split!r}" if split is not None else ""
        raise FmnistEdgeError(f"{path}: no labelled photos{which}")
    return out


def _read_rows(path: Path) -> tuple[set[str], list[dict]]:
    """The header's column names and the rows, as csv.DictReader gives them."""
    try:
        size = path.stat().st_size
        if size > MAX_LABELS_BYTES:
            raise FmnistEdgeError(f"{path}: {size} bytes is too large for a labels file")
        # utf-8-sig: spreadsheet programs start their CSV files with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            names = [name.strip() for name in reader.fieldnames or ()]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:  # ValueError: a NUL in the path
        raise FmnistEdgeError(f"cannot read labels file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    repeated = sorted(name for name, count in Counter(names).items() if name and count > 1)
    if repeated:  # DictReader would keep the last of them and drop the others without a word
        raise FmnistEdgeError(f"{path}:1: the header names column {repeated[0]!r} more than once")
    return set(names), rows


def _checked_rows(path: Path, rows: list[dict], has_split: bool) -> Iterator[tuple[int, LabelledPhoto]]:
    """(row number, photo) for every row, or FmnistEdgeError naming the first bad one."""
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        if None in row:
            raise FmnistEdgeError(f"{path}:{n}: more fields than the header has")
        fields = {(key or "").strip(): (value or "").strip() for key, value in row.items()}
        file = fields.get("file", "")
        if not file:
            raise FmnistEdgeError(f"{path}:{n}: the 'file' field is empty")
        if not _is_plain_name(file):
            raise FmnistEdgeError(f"{path}:{n}: {file!r} is not a plain file name in the folder")
        index = _label_index(path, n, fields.get("label", ""), fields.get("class_name", ""))
        row_split = fields.get("split", "")
        if has_split and row_split not in SPLITS:
            raise FmnistEdgeError(f"{path}:{n}: split {row_split!r} is not one of {', '.join(SPLITS)} "
                                  "(exact spelling; every row of a file with a split column needs one)")
        yield n, LabelledPhoto(file, index, row_split)


def _label_index(path: Path, n: int, label: str, class_name: str) -> int:
    """The class index that `label` and `class_name` name, when they name the same one."""
    by_number = _parse_label(label) if label else None
    if label and by_number is None:
        raise FmnistEdgeError(f"{path}:{n}: label {label!r} is not a class number 0-9 (ASCII digits)")
    by_name = CLASS_NAMES.index(class_name) if class_name in CLASS_NAMES else None
    if class_name and by_name is None:
        raise FmnistEdgeError(f"{path}:{n}: class_name {class_name!r} is not one of {', '.join(CLASS_NAMES)}")
    if by_number is not None and by_name is not None and by_number != by_name:
        raise FmnistEdgeError(f"{path}:{n}: label {by_number} is {CLASS_NAMES[by_number]!r}, "
                              f"but class_name says {class_name!r}")
    index = by_number if by_number is not None else by_name
    if index is None:
        raise FmnistEdgeError(f"{path}:{n}: no label: give 'label' (0-9) or 'class_name' "
                              f"({', '.join(CLASS_NAMES)})")
    return index


def _parse_label(text: str) -> int | None:
    """0-9 from ASCII digits only: int() also takes '３' and '٣', and isdigit() also passes '²'."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value < len(CLASS_NAMES) else None


def _is_plain_name(file: str) -> bool:
    """A name inside the folder: no separator, not '.' or '..', no NUL (which no file name holds)."""
    return "\x00" not in file and file not in (".", "..") and Path(file).name == file


def _refuse_repeats(path: Path, photos: list[tuple[int, LabelledPhoto]], folder: Path) -> None:
    """A photo listed twice, by name or by being the same file under two names (a link)."""
    first_row: dict[object, tuple[int, LabelledPhoto]] = {}
    for n, photo in photos:
        keys: list[object] = [photo.file]
        identity = _file_identity(folder / photo.file)
        if identity is not None:
            keys.append(identity)
        for key in keys:
            if key in first_row:
                raise FmnistEdgeError(_repeat_message(path, n, photo, *first_row[key]))
            first_row[key] = (n, photo)


def _repeat_message(path: Path, n: int, photo: LabelledPhoto, m: int, first: LabelledPhoto) -> str:
    same = f"{photo.file!r} is listed again" if photo.file == first.file else \
        f"{photo.file!r} is the same file as {first.file!r}"
    if photo.split != first.split:
        return (f"{path}:{n}: {same} (row {m}), in split {photo.split!r} here and {first.split!r} there: "
                "a photo in both splits would be validated on what it was trained on")
    return f"{path}:{n}: {same} (row {m}): each photo may be listed once"


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing photo, following links; None when it cannot be read (reported later)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None  # 0: a filesystem without inode numbers


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
