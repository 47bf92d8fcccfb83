"""How the model does on labelled real photos: what users actually shoot.

The photos go through classify's own path (preprocess, then the mirror-averaged answer and its
"unsure" flag), so every figure here is a figure of `fmnist-edge classify`. Photos are never used
for training by this module; it only measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.classifier import Classifier
from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError
from fmnist_edge.runtime.photo_labels import read_labels
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True)
class PhotoResult:
    file: str
    true: int
    predicted: int
    confidence: float
    unsure: bool
    pixels: np.ndarray = field(repr=False, compare=False)  # the 28x28 model input, for the contact sheet

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass(frozen=True)
class PhotoSummary:
    results: list[PhotoResult]
    unreadable: list[str]
    unsure_threshold: float | None  # None: the model has no calibrated threshold, nothing is flagged

    @property
    def accuracy(self) -> float:
        return sum(r.correct for r in self.results) / len(self.results)

    def confusion(self) -> np.ndarray:
        """[true, predicted] counts."""
        matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for r in self.results:
            matrix[r.true, r.predicted] += 1
        return matrix

    def per_class(self) -> dict[str, dict]:
        """Recall of every class that has photos."""
        out = {}
        for i, name in enumerate(CLASS_NAMES):
            of_class = [r for r in self.results if r.true == i]
            if of_class:
                hits = sum(r.correct for r in of_class)
                out[name] = {"correct": hits, "photos": len(of_class), "recall": round(hits / len(of_class), 4)}
        return out

    def sure(self) -> dict:
        """The answers not flagged unsure: how many (coverage) and how often right."""
        sure = [r for r in self.results if not r.unsure]
        return {
            "answers": len(sure),
            "coverage": round(len(sure) / len(self.results), 4),
            "accuracy": round(sum(r.correct for r in sure) / len(sure), 4) if sure else None,
            "flagged_unsure": len(self.results) - len(sure),
        }

    def to_json(self, model: str, split: str | None) -> dict:
        return {
            "model": model,
            "split": split,
            "photos": len(self.results),
            "correct": sum(r.correct for r in self.results),
            "accuracy": round(self.accuracy, 4),
            "per_class": self.per_class(),
            "unsure_threshold": self.unsure_threshold,
            "not_unsure": self.sure(),
            "confusion": {"rows": "true class", "columns": "predicted class", "classes": list(CLASS_NAMES),
                          "counts": self.confusion().tolist()},
            "results": [{"file": r.file, "true": CLASS_NAMES[r.true], "predicted": CLASS_NAMES[r.predicted],
                         "confidence": round(r.confidence, 4), "unsure": r.unsure, "correct": r.correct}
                        for r in self.results],
            "unreadable": self.unreadable,
        }


def evaluate_photos(folder: Path, labels: Path, classifier: Classifier, split: str | None = None) -> PhotoSummary:
    """Every photo that could be read, scored; one error line for each that could not."""
    entries = read_labels(labels, split=split, folder=folder)
    readable: list[tuple[str, int, np.ndarray]] = []
    errors: list[str] = []
    for row in entries:
        try:
            readable.append((row.file, row.label, preprocess(folder / row.file, name=row.file)))
        except ImageError as exc:
            errors.append(str(exc))
    if not readable:
        raise FmnistEdgeError(f"{folder}: none of the {len(entries)} photos could be read")
    pixels = np.stack([p for _, _, p in readable])
    predictions = classifier.to_predictions(classifier.predict(pixels))
    results = [
        PhotoResult(name, true, p.index, p.confidence, p.unsure, x)
        for (name, true, x), p in zip(readable, predictions, strict=True)
    ]
    return PhotoSummary(results, errors, classifier.unsure_threshold)
