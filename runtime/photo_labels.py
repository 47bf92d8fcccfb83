"""A folder of labelled photos: `labels.csv` beside the images, as in shared/photos and photos-train.

Columns: `file` and either `label` (0-9) or `class_name` (one of the ten); an optional `split`
(`train`, `val`, ...) picks a subset. Evaluation and photo-domain training read the same file
through this one reader, so a folder that trains also evaluates, and every mistake in it is
reported the same way: one line naming the file and the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.runtime.errors import FmnistEdgeError
from fmnist_edge.runtime.spec import CLASS_NAMES

LABELS_FILE = "labels.csv"
MAX_LABELS_BYTES = 16 * 1024 * 1024  # far above any real folder; a larger file is not a labels file


@dataclass(frozen=True)
class LabelledPhoto:
    file: str
    label: int
    split: str  # "" when the file has no split column


def read_labels(path: Path, split: str | None = None, require_files: bool = False) -> list[LabelledPhoto]:
    """Rows of a labels file, checked; `split` keeps only that split; `require_files` checks every
    listed photo exists beside the file (training does, so it never stops halfway)."""
    try:
        if path.stat().st_size > MAX_LABELS_BYTES:
            raise FmnistEdgeError(f"{path}: {path.stat().st_size} bytes is too large for a labels file")
        # utf-8-sig: spreadsheet programs start their CSV files with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FmnistEdgeError(f"cannot read labels file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if "file" not in columns or not columns & {"label", "class_name"}:
        raise FmnistEdgeError(f"{path}: needs a header with 'file' and 'label' (0-9) or 'class_name' columns")
    if split is not None and "split" not in columns:
        raise FmnistEdgeError(f"{path}: has no 'split' column, so --split {split} cannot be applied")
    out: list[LabelledPhoto] = []
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        if None in row:
            raise FmnistEdgeError(f"{path}:{n}: more fields than the header has")
        file, label, class_name, row_split = ((row.get(key) or "").strip()
                                             for key in ("file", "label", "class_name", "split"))
        index = _label_index(label, class_name)
        if index is None:
            raise FmnistEdgeError(f"{path}:{n}: label {label or class_name!r} is not 0-9 or a class name "
                                  f"({', '.join(CLASS_NAMES)})")
        if not file:
            raise FmnistEdgeError(f"{path}:{n}: the 'file' field is empty")
        if Path(file).name != file:
            raise FmnistEdgeError(f"{path}:{n}: {file!r} is not a plain file name in the folder")
        if split is not None and row_split != split:
            continue
        if require_files and not (path.parent / file).is_file():
            raise FmnistEdgeError(f"{path}:{n}: {file} is missing from {path.parent}")
        out.append(LabelledPhoto(file, index, row_split))
    if not out:
        which = f" in split {split!r}" if split is not None else ""
        raise FmnistEdgeError(f"{path}: no labelled photos{which}")
    return out


def _label_index(label: str, class_name: str) -> int | None:
    if label:
        return int(label) if label.isdigit() and int(label) < len(CLASS_NAMES) else None
    return CLASS_NAMES.index(class_name) if class_name in CLASS_NAMES else None
