"""`Classifier`: images in, labels and probabilities out. The one object the README's API shows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fmnist_edge.runtime import manifest as manifests
from fmnist_edge.runtime.backends import Backend, load_backend
from fmnist_edge.runtime.errors import FmnistEdgeError, ModelError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import CLASS_NAMES, IMAGE_SIZE

DEFAULT_UNSURE_THRESHOLD = 0.5
ImageSource = str | Path | bytes | BinaryIO


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    confidence: float
    probabilities: np.ndarray  # [10], sums to 1
    unsure: bool

    def top_k(self, k: int) -> list[tuple[int, str, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), CLASS_NAMES[i], float(self.probabilities[i])) for i in order]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def default_model_path(backend: str | None = None) -> Path:
    """The bundled model: int8 TFLite, or int8 ONNX when onnxruntime is asked for."""
    directory = manifests.bundled_dir()
    manifest = manifests.load_manifest(directory)
    name = by_name("onnx-int8").filename if backend == "onnxruntime" else manifest["default_model"]
    return directory / name


class Classifier:
    """Load a .tflite or .onnx model once, then classify images or prepared 28x28 pixel arrays.

    The model's SHA-256 is checked against the manifest in its folder (the bundled one for the
    default model), so a corrupted or swapped file is refused rather than silently trusted.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        backend: str | None = None,
        verify: bool = True,
    ) -> None:
        path = Path(model) if model is not None else default_model_path(backend)
        manifest = _manifest_beside(path)
        if verify and manifest is not None and path.is_file():
            manifests.verify(path, manifest)
        self.path = path
        self.backend: Backend = load_backend(path, threads, backend)
        calibrated = (manifest or {}).get("unsure_threshold")  # None when export skipped int8 calibration
        self.unsure_threshold = float(calibrated) if calibrated is not None else DEFAULT_UNSURE_THRESHOLD

    def predict(self, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 [N, 28, 28] (or [N, 28, 28, 1]) light-on-dark pixels -> probabilities [N, 10]."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[..., None]
        if pixels.ndim != 4 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1):
            raise ModelError(f"expected pixels of shape [N, 28, 28], got {list(pixels.shape)}")
        if len(pixels) == 0:
            return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
        pixels = pixels.astype(np.uint8, copy=False)
        scores = np.concatenate(
            [self.backend.run(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
        )
        return softmax(scores.astype(np.float64)).astype(np.float32)

    def to_predictions(self, probabilities: np.ndarray) -> list[Prediction]:
        out = []
        for probs in probabilities:
            index = int(probs.argmax())
            confidence = float(probs[index])
            out.append(Prediction(index, CLASS_NAMES[index], confidence, probs, confidence < self.unsure_threshold))
        return out

    def classify(self, images: list[ImageSource] | ImageSource) -> list[Prediction]:
        """Photos or dataset images (paths, bytes or file objects) -> one Prediction each.

        Raises ImageError for the first image that cannot be read; the CLI uses `prepare` and
        `predict` separately so that one bad file does not stop a batch.
        """
        items = images if isinstance(images, list) else [images]
        if not items:
            return []
        pixels = np.stack([preprocess(item) for item in items])
        return self.to_predictions(self.predict(pixels))


def _manifest_beside(path: Path) -> dict | None:
    if not (path.parent / manifests.MANIFEST_FILE).is_file():
        return None
    try:
        return manifests.load_manifest(path.parent)
    except FmnistEdgeError:
        return None
