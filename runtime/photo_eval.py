"""Top-1 on a folder of labelled real photos: how the model does on what users actually shoot.

The labels file is CSV with a `file` column and either `label` (0-9) or `class_name`, as in
shared/photos/labels.csv. Photos are never used for training; this only measures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.classifier import Classifier
from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import CLASS_NAMES


@dataclass(frozen=True)
class PhotoResult:
    file: str
    true: int
    predicted: int
    confidence: float

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


def read_labels(path: Path) -> list[tuple[str, int]]:
    try:
        # utf-8-sig: spreadsheet programs start their CSV files with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise FmnistEdgeError(f"cannot read labels file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    out = []
    for n, row in enumerate(rows, start=2):
        label, class_name, file = ((row.get(key) or "").strip() for key in ("label", "class_name", "file"))
        if label.isdigit():
            index = int(label)
        elif class_name in CLASS_NAMES:
            index = CLASS_NAMES.index(class_name)
        else:
            raise FmnistEdgeError(f"{path}:{n}: needs a 'label' 0-9 or a 'class_name' from the ten classes")
        if not 0 <= index < len(CLASS_NAMES) or not file:
            raise FmnistEdgeError(f"{path}:{n}: needs a 'file' and a label 0-9, got {dict(row)}")
        out.append((file, index))
    if not out:
        raise FmnistEdgeError(f"{path}: no labelled photos")
    return out


def evaluate_photos(folder: Path, labels: Path, classifier: Classifier) -> tuple[list[PhotoResult], list[str]]:
    """Results for every photo that could be read, and one error line for each that could not."""
    entries = read_labels(labels)
    readable: list[tuple[str, int, np.ndarray]] = []
    errors: list[str] = []
    for name, true in entries:
        try:
            readable.append((name, true, preprocess(folder / name, name=name)))
        except ImageError as exc:
            errors.append(str(exc))
    if not readable:
        return [], errors
    probs = classifier.predict(np.stack([pixels for _, _, pixels in readable]))
    results = [
        PhotoResult(name, true, int(p.argmax()), float(p.max()))
        for (name, true, _), p in zip(readable, probs, strict=True)
    ]
    return results, errors
