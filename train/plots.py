"""Report images for `evaluate` drawn with matplotlib: sample predictions and training curves (the
confusion matrix is runtime/confusion_image.py's, shared with evaluate-photos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.runtime.spec import CLASS_NAMES
from fmnist_edge.train.record import TrainingRecord


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)


def sample_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, path: Path,
                rows: int = 6, cols: int = 8, seed: int = 0) -> None:
    """Half random test images, half misclassified ones (titles in red), so errors are visible."""
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(predictions != labels)
    n_wrong = min(len(wrong), rows * cols // 2)
    picks = np.concatenate([
        rng.choice(len(images), rows * cols - n_wrong, replace=False),
        rng.choice(wrong, n_wrong, replace=False) if n_wrong else np.array([], dtype=int),
    ])
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.45, rows * 1.65))
    for ax, i in zip(axes.flat, picks, strict=True):
        ok = predictions[i] == labels[i]
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{'' if ok else '✗ '}{CLASS_NAMES[predictions[i]]}\n(true: {CLASS_NAMES[labels[i]]})",
                     fontsize=6.5, color="black" if ok else "red")
        ax.axis("off")
    fig.suptitle("Predicted (true) — misclassified marked ✗ in red", fontsize=9)
    _save(fig, path)


def training_curves(record: TrainingRecord, path: Path) -> None:
    plt = _pyplot()
    history = record.history
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    loss_ax.plot(epochs, [h["loss"] for h in history], label="train (augmented, smoothed labels)")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(fontsize=8)
    acc_ax.plot(epochs, [100 * h["accuracy"] for h in history], label="train (augmented)")
    acc_ax.plot(epochs, [100 * h["val_accuracy"] for h in history], label="validation")
    if record.best_epoch:
        acc_ax.axvline(record.best_epoch, color="gray", ls=":", label=f"kept epoch {record.best_epoch}")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy %")
    acc_ax.legend(fontsize=8)
    fig.suptitle(f"Training, seed {record.config.seed}, {record.params} parameters")
    _save(fig, path)
