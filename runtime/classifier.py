"""`Classifier`: images in, labels and probabilities out. The one object the README's API shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fmnist_edge.runtime import manifest as manifests
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.backends import Backend, load_backend
from fmnist_edge.runtime.contract import NON_FINITE, finite_rows
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import default_format
from fmnist_edge.runtime.model_info import check_contract, read_metadata
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import CLASS_NAMES, IMAGE_SIZE

ImageSource = str | Path | bytes | BinaryIO
LOAD_ATTEMPTS = 3  # reads of a manifest that an export is replacing at that moment


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    confidence: float
    probabilities: np.ndarray  # [10], sums to 1
    unsure: bool | None  # None: the model has no calibrated threshold, so nothing is flagged (or vouched for)

    def top_k(self, k: int) -> list[tuple[int, str, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), CLASS_NAMES[i], float(self.probabilities[i])) for i in order]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def mirror_averaged(
    run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """uint8 [N, 28, 28, 1] -> probabilities [N, 10] (float64): the mean of each image's and its
    mirror image's softmax. This is how classify answers, and what its unsure threshold is
    calibrated on.

    Why: a garment and its mirror image are the same class, and training flips images at random,
    yet the model's answer is not exactly symmetric. It changed under mirroring for 2.2% of the
    10k test images, and for 9 of the 36 shared photos, so a shoe answered differently pointing
    left than pointing right. Averaging the two makes the answer invariant and lifted test accuracy
    by 0.09-0.13 pp in every exported format. The cost is a second image in the same interpreter
    call, small next to the photo preprocessing.
    """
    return average_views(*mirror_scores(run, pixels, batch_size))


def mirror_scores(
    run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The model's raw scores for each image and for its mirror image, both in one call per batch."""
    as_is, mirrored = [], []
    for i in range(0, len(pixels), batch_size):
        batch = pixels[i : i + batch_size]
        both = run(np.ascontiguousarray(np.concatenate([batch, batch[:, :, ::-1]])))
        as_is.append(both[: len(batch)])
        mirrored.append(both[len(batch) :])
    return np.concatenate(as_is), np.concatenate(mirrored)


def average_views(as_is: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Scores of both views -> the mean of their softmax probabilities (float64)."""
    return (softmax(as_is.astype(np.float64)) + softmax(mirrored.astype(np.float64))) / 2


def default_model_path(backend: str | None = None) -> Path:
    """The bundled model for `backend`: the one its registry row runs by default
    (formats.default_format). With "auto"/None the row is the registry's automatic choice, the
    first installed interpreter in priority order, so an install with only onnxruntime runs the
    int8 ONNX and one with no interpreter at all runs the float TFLite on numpy. When that is the
    manifest's default format, the manifest names the file."""
    directory = manifests.bundled_dir()
    manifest = manifests.load_manifest(directory)
    row = registry.auto() if backend in (None, "auto") else registry.row(backend)
    default = default_format(row.kind, row.precisions) if row is not None else default_format()
    name = manifest.get("default_model") if default == default_format() else default.filename
    if name is None:
        raise ModelError(
            f"{directory / manifests.MANIFEST_FILE} names no default model (`fmnist-edge export --int8` "
            "writes one); pass --model"
        )
    return directory / name


class Classifier:
    """Load a .tflite or .onnx model once, then classify images or prepared 28x28 pixel arrays.

    When the model's folder has a manifest (the bundled folder does), the model must be listed
    there with the same SHA-256, so a corrupted, swapped or left-over file is refused rather than
    silently trusted; an unreadable or malformed manifest is refused too. A model in a folder
    without a manifest runs only when named, as an unverified model (`verified` False, which the
    CLI warns about). The unsure threshold is the model's own, read from its metadata (see
    `own_threshold`); a model that carries none gives answers with no unsure flag (`unsure` None):
    a threshold is calibrated for one model on its own validation images, so any number guessed
    for another model would flag or vouch for answers at random.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        backend: str | None = None,
        verify: bool = True,
    ) -> None:
        folder = Path(model).parent if model is not None else manifests.bundled_dir()
        for attempt in range(LOAD_ATTEMPTS):
            before = manifests.identity(folder / manifests.MANIFEST_FILE)
            try:
                self._load(model, threads, backend, verify)
                return
            except ModelError:
                # An export publishing into the folder right now: the manifest changed under us,
                # so read it again rather than refuse a folder that is complete again.
                if attempt + 1 == LOAD_ATTEMPTS or manifests.identity(folder / manifests.MANIFEST_FILE) == before:
                    raise

    def _load(self, model: str | Path | None, threads: int | None, backend: str | None, verify: bool) -> None:
        path = Path(model) if model is not None else default_model_path(backend)
        manifest = manifests.manifest_beside(path)
        hashed = manifests.verify(path, manifest) if verify and manifest is not None and path.is_file() else None
        self.path = path
        self.verified = verify and manifest is not None
        self.backend: Backend = load_backend(path, threads, backend)
        if hashed is not None and manifests.identity(path) != hashed:
            # Replaced between the hash and the load: what the interpreter read is not what was verified.
            raise ModelError(f"{path}: replaced while it was being loaded (an export publishing?); run it again")
        own = getattr(self.backend, "metadata", None)  # ONNX: read from the open session
        metadata = own() if own is not None else read_metadata(path)
        check_contract(path, metadata)
        calibrated = own_threshold(metadata, manifest, path.name)
        self.unsure_threshold: float | None = float(calibrated) if calibrated is not None else None

    def predict(self, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 [N, 28, 28] (or [N, 28, 28, 1]) light-on-dark pixels -> probabilities [N, 10],
        averaged with the mirror image's (see mirror_averaged); `backend.run` gives the raw scores."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[..., None]
        if pixels.ndim != 4 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1):
            raise ModelError(f"expected pixels of shape [N, 28, 28], got {list(pixels.shape)}")
        if len(pixels) == 0:
            return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
        if pixels.dtype != np.uint8:
            # A cast would turn 0..1 floats into all-black images and answer anyway: refuse instead.
            if not np.issubdtype(pixels.dtype, np.integer) or pixels.min() < 0 or pixels.max() > 255:
                raise ModelError(f"expected uint8 pixels 0..255, got {pixels.dtype} values "
                                 f"{pixels.min()}..{pixels.max()}; scale 0..1 images by 255 and convert")
            pixels = pixels.astype(np.uint8)
        return mirror_averaged(self.backend.run, pixels, batch_size).astype(np.float32)

    def to_predictions(self, probabilities: np.ndarray) -> list[Prediction]:
        """One Prediction per row; a row that is not all finite is refused (ModelError), never
        answered: NaN would compare as "not unsure" and print as invalid JSON. The CLI checks rows
        with contract.finite_rows first, so that only the input concerned fails."""
        ok = finite_rows(probabilities)
        if not ok.all():
            raise ModelError(f"{self.path.name}: {NON_FINITE} (image {int(np.flatnonzero(~ok)[0])})")
        out = []
        for probs in probabilities:
            index = int(probs.argmax())
            confidence = float(probs[index])
            unsure = None if self.unsure_threshold is None else confidence < self.unsure_threshold
            out.append(Prediction(index, CLASS_NAMES[index], confidence, probs, unsure))
        return out

    def classify(self, images: Sequence[ImageSource] | ImageSource) -> list[Prediction]:
        """Photos or dataset images (paths, bytes or file objects; one, or a list or tuple) -> one
        Prediction each.

        Raises ImageError for the first image that cannot be read; the CLI preprocesses each file
        itself and calls `predict`, so that one bad file does not stop a batch.
        """
        single = isinstance(images, (str, Path, bytes)) or hasattr(images, "read")
        items = [images] if single else list(images)
        if not items:
            return []
        pixels = np.stack([preprocess(item) for item in items])
        return self.to_predictions(self.predict(pixels))


def own_threshold(metadata: dict[str, object], manifest: dict | None, name: str) -> float | None:
    """The threshold the model was calibrated with. Its metadata carries it, so it travels with the
    file (None there: not calibrated). Models exported before that fall back to their manifest
    entry, then to the folder's value; None when there is no manifest or no calibration."""
    if "unsure_threshold" in metadata:
        return metadata["unsure_threshold"]  # type: ignore[return-value]  # check_contract vetted it
    if manifest is None:
        return None
    entry = next((m for m in manifest.get("models", []) if m.get("file") == name), {})
    return entry["unsure_threshold"] if "unsure_threshold" in entry else manifest.get("unsure_threshold")
