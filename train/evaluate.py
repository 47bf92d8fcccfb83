"""`fmnist-edge evaluate MODEL`: one evaluation loop for every format.

Anything with `run(uint8 pixels [N,28,28,1]) -> scores [N,10]` can be evaluated: the runtime's
TFLite and ONNX backends, and the Keras adapter below. So the figures for a .keras, .tflite or
.onnx file come from the same code, on the same 10k test images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path, write_text_atomic
from fmnist_edge.common.keras_model import load_keras_model, training_record_for
from fmnist_edge.runtime.backends import Backend, load_backend, run_batched
from fmnist_edge.runtime.classifier import average_views, mirror_scores
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import kind_of
from fmnist_edge.runtime.spec import CLASS_NAMES, NUM_CLASSES
from fmnist_edge.train import data as fmnist_data


class KerasBackend:
    """The float Keras model behind the runtime's Backend interface (needs TensorFlow)."""

    name = "keras"

    def __init__(self, path: Path) -> None:
        self._model = load_keras_model(path)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        return self._model(pixels.astype(np.float32), training=False).numpy()


def open_model(path: Path, threads: int | None = None) -> Backend:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    return KerasBackend(path) if kind_of(path) == "keras" else load_backend(path, threads)


@dataclass
class Evaluation:
    accuracy: float
    confusion: np.ndarray  # [true, predicted]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    predictions: np.ndarray
    scores: np.ndarray  # logits, or probabilities when mirror-averaged
    mirror_disagreement: float | None = None  # share of answers mirroring changes; only when mirror-averaged
    labels: np.ndarray | None = None  # the true classes, in the order of `predictions`

    def top_confusions(self, k: int = 5) -> list[tuple[str, str, int]]:
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(off, axis=None)[::-1][:k]
        pairs = zip(*np.unravel_index(order, off.shape), strict=True)
        return [(CLASS_NAMES[i], CLASS_NAMES[j], int(off[i, j])) for i, j in pairs]

    def to_dict(self) -> dict[str, object]:
        return {
            "accuracy": round(self.accuracy, 6),
            "per_class": {
                name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4)}
                for name, p, r, f in zip(CLASS_NAMES, self.precision, self.recall, self.f1, strict=True)
            },
            "confusion_matrix": self.confusion.tolist(),
            "top_confusions": [{"true": t, "predicted": p, "count": c} for t, p, c in self.top_confusions()],
            **({} if self.mirror_disagreement is None
               else {"mirror_disagreement_without_averaging": round(self.mirror_disagreement, 6)}),
        }


def evaluate(backend: Backend, images: np.ndarray, labels: np.ndarray, batch: int = 500,
             mirror_average: bool = False) -> Evaluation:
    """The model's own accuracy, or with mirror_average the accuracy of classify's answers."""
    pixels = images[..., None] if images.ndim == 3 else images
    disagreement = None
    if mirror_average:
        as_is, mirrored = mirror_scores(backend.run, pixels, batch)
        scores = average_views(as_is, mirrored)
        disagreement = float((as_is.argmax(1) != mirrored.argmax(1)).mean())  # what the averaging removes
    else:
        scores = run_batched(backend.run, pixels, batch)
    pred = scores.argmax(1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros_like(tp), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return Evaluation(float((pred == labels).mean()), confusion, precision, recall, f1, pred, scores, disagreement,
                      labels)


def run(model_path: Path, out_dir: Path, data_dir: Path | None = None, threads: int | None = None,
        plots: bool = True, mirror_average: bool = False) -> Evaluation:
    """Evaluate on the full 10k test set and write report.json (and PNGs when plots=True)."""
    backend = open_model(model_path, threads)
    ds = fmnist_data.load(data_dir)
    result = evaluate(backend, ds.test_images, ds.test_labels, mirror_average=mirror_average)
    report = {"model": Path(model_path).name, "test_images": len(ds.test_labels), "mirror_average": mirror_average,
              **result.to_dict()}
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        from fmnist_edge.runtime.confusion_image import confusion_image
        from fmnist_edge.train import plots as plotting
        from fmnist_edge.train.record import read_record

        title = (f"{Path(model_path).name}: {result.confusion.sum()} test images, "
                 f"accuracy {100 * result.accuracy:.2f}%")
        with atomic_path(out_dir / "confusion_matrix.png") as tmp:
            confusion_image(result.confusion, title).save(tmp, format="PNG")
        plotting.sample_grid(ds.test_images, ds.test_labels, result.predictions, out_dir / "samples.png")
        record = training_record_for(Path(model_path))
        if record is not None:
            plotting.training_curves(read_record(record), out_dir / "training_curves.png")
            report["training_record"] = record.name
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return result
