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
from fmnist_edge.runtime.errors import FmnistEdgeError
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
        rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    except OSError as exc:
        raise FmnistEdgeError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    out = []
    for n, row in enumerate(rows, start=2):
        if row.get("label", "").strip().isdigit():
            index = int(row["label"])
        elif row.get("class_name") in CLASS_NAMES:
            index = CLASS_NAMES.index(row["class_name"])
        else:
            raise FmnistEdgeError(f"{path}:{n}: needs a 'label' 0-9 or a 'class_name' from the ten classes")
        if not 0 <= index < len(CLASS_NAMES) or not row.get("file"):
            raise FmnistEdgeError(f"{path}:{n}: bad row {row}")
        out.append((row["file"], index))
    if not out:
        raise FmnistEdgeError(f"{path}: no labelled photos")
    return out


def evaluate_photos(folder: Path, labels: Path, classifier: Classifier) -> list[PhotoResult]:
    entries = read_labels(labels)
    pixels = np.stack([preprocess(folder / name, name=name) for name, _ in entries])
    probs = classifier.predict(pixels)
    return [
        PhotoResult(name, true, int(p.argmax()), float(p.max()))
        for (name, true), p in zip(entries, probs, strict=True)
    ]
