"""Real photos for photo-domain training, passed through the device's own preprocessing.

Training sees exactly the 28x28 inputs `classify` would make of the same files
(runtime.preprocess is the one source of truth), so whatever the segmentation does to a photo on a
Raspberry Pi, the model has learned from. The `train` split is mixed into training batches; the
`val` split is scored after every epoch and picks the best epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError
from fmnist_edge.runtime.photo_labels import LABELS_FILE, read_labels
from fmnist_edge.runtime.preprocess import preprocess

TRAIN_SPLIT, VAL_SPLIT = "train", "val"


@dataclass(frozen=True)
class PhotoSplit:
    images: np.ndarray  # uint8 [N, 28, 28], already preprocessed
    labels: np.ndarray  # int [N]
    files: tuple[str, ...]
    unreadable: tuple[str, ...] = field(default=())  # one line each: what was skipped and why


def load_split(folder: Path, split: str, log: Callable[[str], None] = print) -> PhotoSplit:
    """Preprocess every photo of one split. An unreadable photo is skipped with one line; anything
    wrong with the labels file or a missing photo stops here, before any training."""
    rows = read_labels(folder / LABELS_FILE, split=split, require_files=True)
    images, labels, files, unreadable = [], [], [], []
    for row in rows:
        try:
            images.append(preprocess(folder / row.file, name=row.file))
        except ImageError as exc:
            log(f"skipped: {exc}")
            unreadable.append(str(exc))
            continue
        labels.append(row.label)
        files.append(row.file)
    if not images:
        raise FmnistEdgeError(f"{folder}: none of the {len(rows)} '{split}' photos could be read")
    return PhotoSplit(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(files), tuple(unreadable))


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling probabilities that draw every class present equally often: the photos hold 100 of
    most garments but 18 ankle boots, and the loss should not learn that shoes are rare."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()
