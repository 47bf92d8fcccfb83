"""Real photos for photo-domain training, passed through the device's own preprocessing.

Training sees exactly the 28x28 inputs `classify` would make of the same files
(runtime.preprocess is the one source of truth), so whatever the segmentation does to a photo on a
Raspberry Pi, the model has learned from. The `train` split is mixed into training batches; the
`val` split is scored after every epoch and picks the best epoch.

Each training photo is also preprocessed a few more times from a jittered copy of the photo: a
different framing, a slight tilt, other lighting and colour. Those variants pass through the real
segmentation, so they vary the way the device's inputs vary from one photographer to the next
(where the mask edge falls, how much floor survives, how bright the item comes out), which no
augmentation of the finished 28x28 input can imitate. It is done once, before training.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError
from fmnist_edge.runtime.photo_labels import LABELS_FILE, read_labels
from fmnist_edge.runtime.preprocess import open_image, preprocess, to_model_input

TRAIN_SPLIT, VAL_SPLIT = "train", "val"


@dataclass(frozen=True)
class PhotoSplit:
    images: np.ndarray  # uint8 [N, 28, 28], already preprocessed
    labels: np.ndarray  # int [N]
    files: tuple[str, ...]
    unreadable: tuple[str, ...] = field(default=())  # one line each: what was skipped and why
    variants: np.ndarray | None = None  # uint8 [N, V, 28, 28]: images[i] and V - 1 jittered re-preprocessings


@dataclass(frozen=True)
class PhotoJitter:
    """How far a variant's photo may differ from the original before it is preprocessed."""

    keep_side: tuple[float, float] = (0.8, 1.0)  # crop each side of the frame to this share
    crop_prob: float = 0.8
    max_tilt: float = 12.0  # degrees
    tilt_prob: float = 0.5
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.5, 1.5)


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


def subset_of(photos: PhotoSplit, count: int, seed: int) -> PhotoSplit:
    """`count` of the photos, each class keeping its share (at least one photo): the smaller training
    sets of a learning curve, which measures what more photos would buy. The same seed gives nested
    subsets (the 137 photos of a smaller set are among the 274 of a larger one)."""
    if not 0 < count <= len(photos.files):
        raise FmnistEdgeError(f"photo subset {count}: must be between 1 and the {len(photos.files)} training photos")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in np.unique(photos.labels):
        members = rng.permutation(np.flatnonzero(photos.labels == label))
        keep.extend(members[: max(1, round(count * len(members) / len(photos.files)))].tolist())
    keep.sort()
    return PhotoSplit(photos.images[keep], photos.labels[keep], tuple(photos.files[i] for i in keep),
                      photos.unreadable)


def with_variants(folder: Path, photos: PhotoSplit, count: int, seed: int,
                  jitter: PhotoJitter = PhotoJitter(), workers: int = 1) -> PhotoSplit:
    """`photos` with `count` jittered re-preprocessings of each photo (see the module docstring).
    Seeded per photo, so the result does not depend on `workers`."""
    if count <= 0:
        return photos
    jobs = [(folder / name, count, (seed, i), jitter) for i, name in enumerate(photos.files)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            extra = list(pool.map(_variants_of, *zip(*jobs, strict=True), chunksize=8))
    else:
        extra = [_variants_of(*job) for job in jobs]
    stacked = np.concatenate([photos.images[:, None], np.stack(extra)], axis=1)
    return PhotoSplit(photos.images, photos.labels, photos.files, photos.unreadable, stacked)


def _variants_of(path: Path, count: int, seed: tuple[int, int], jitter: PhotoJitter) -> np.ndarray:
    rng = np.random.default_rng(seed)
    photo = open_image(path).convert("RGB")
    return np.stack([to_model_input(_jittered(photo, rng, jitter)) for _ in range(count)])


def _jittered(photo: Image.Image, rng: np.random.Generator, jitter: PhotoJitter) -> Image.Image:
    width, height = photo.size
    if rng.random() < jitter.crop_prob:
        keep_w, keep_h = rng.uniform(*jitter.keep_side, 2)
        w, h = max(8, int(width * keep_w)), max(8, int(height * keep_h))
        x0, y0 = int(rng.uniform(0, width - w + 1)), int(rng.uniform(0, height - h + 1))
        photo = photo.crop((x0, y0, x0 + w, y0 + h))
    if rng.random() < jitter.tilt_prob:
        # Fill the corners with the border's colour, so the rotation does not paint a new "item".
        pixels = np.asarray(photo)
        border = np.concatenate([pixels[[0, -1]].reshape(-1, 3), pixels[:, [0, -1]].reshape(-1, 3)])
        fill = tuple(int(v) for v in np.median(border, axis=0))
        angle = rng.uniform(-jitter.max_tilt, jitter.max_tilt)
        photo = photo.rotate(angle, Image.Resampling.BILINEAR, fillcolor=fill)
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(*jitter.brightness))
    photo = ImageEnhance.Contrast(photo).enhance(rng.uniform(*jitter.contrast))
    return ImageEnhance.Color(photo).enhance(rng.uniform(*jitter.saturation))
