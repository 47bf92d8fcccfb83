"""Write artifacts/golden.npz: the selftest's reference images and the int8 TFLite model's scores for them.

The images are a fixed choice (the first PER_CLASS test images of each class, in test-set order),
so every export records the same hundred and a diff between two golden files shows the model
changed, not the sample. Scores come from the runtime's own backend, exactly as a device gets them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.common.errors import ExportError
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.formats import DEFAULT_FORMAT
from fmnist_edge.runtime.golden import GOLDEN_FILE, load_golden
from fmnist_edge.runtime.machine import package_version
from fmnist_edge.runtime.manifest import sha256_file
from fmnist_edge.runtime.spec import NUM_CLASSES

PER_CLASS = 10
GOLDEN_FORMAT = DEFAULT_FORMAT  # the golden scores come from the bundled default model


def golden_indices(labels: np.ndarray, per_class: int = PER_CLASS) -> np.ndarray:
    """Positions of the first `per_class` images of each class, in test-set order."""
    labels = np.asarray(labels)
    picked = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)])
    return np.sort(picked)


def write_golden(out_dir: Path, images: np.ndarray, labels: np.ndarray, int8_tflite_path: Path) -> Path:
    """Record the golden images, their labels and the model's dequantized scores into out_dir/golden.npz.

    `images` are the uint8 [N, 28, 28] test images and `labels` their labels. One thread: the
    int8 kernels are integer arithmetic, and LiteRT gave bit-identical scores at 1, 2, 3, 4 and 8
    threads and at batch 1 and 100 here, so the thread count is recorded, not relied on.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise ExportError(f"golden images must be uint8 [N, 28, 28] with one label each, got {list(images.shape)}")
    pick = golden_indices(labels)
    backend = load_backend(Path(int8_tflite_path), threads=1)
    chosen = np.ascontiguousarray(images[pick])
    scores = backend.run(chosen[..., None]).astype(np.float32)
    target = Path(out_dir) / GOLDEN_FILE
    version = package_version(registry.row(backend.name).package)
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(
            fh,
            images=chosen,
            labels=labels[pick].astype(np.uint8),
            indices=pick.astype(np.int32),
            scores=scores,
            model_file=np.array(Path(int8_tflite_path).name),
            model_sha256=np.array(sha256_file(Path(int8_tflite_path))),
            recorded_with=np.array(f"{backend.name} {version}, 1 thread"),
        )
    return target


def golden_entry(out_dir: Path, model_sha256: str | None) -> dict | None:
    """The manifest's record of golden.npz (file, sha256, image count), or None when there is none or
    it was recorded from another model than the one whose SHA-256 is given (say, before a re-export)."""
    path = Path(out_dir) / GOLDEN_FILE
    if model_sha256 is None or not path.is_file():
        return None
    golden = load_golden(path)
    if golden.model_sha256 != model_sha256:
        return None
    return {"file": GOLDEN_FILE, "sha256": sha256_file(path), "images": len(golden)}
