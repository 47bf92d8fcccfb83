"""The "unsure" threshold that classify flags low-confidence answers with, calibrated on held-out data.

Rule: the threshold is the highest top-1 probability below which the shipped model is right at
most UNSURE_TARGET of the time on the validation split (5k training images held out from
training, never the test set). The probabilities are classify's own, averaged with the mirror
image's (runtime.classifier.mirror_averaged), so the threshold means the same there. Above it,
answers are much more reliable; below it, the user should look twice. The figures that justify
it are stored next to it in the manifest.
"""

from __future__ import annotations

import numpy as np

UNSURE_TARGET = 0.70  # flagged answers are right at most 70% of the time


def unsure_threshold(probabilities: np.ndarray, labels: np.ndarray, target: float = UNSURE_TARGET) -> dict:
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    order = np.argsort(confidence)
    conf_sorted, correct_sorted = confidence[order], correct[order]
    # Accuracy of the k least confident answers, for every k.
    acc_below = np.cumsum(correct_sorted) / np.arange(1, len(correct_sorted) + 1)
    ok = np.flatnonzero(acc_below <= target)
    k = int(ok[-1]) + 1 if len(ok) else 0
    threshold = float(conf_sorted[k]) if k < len(conf_sorted) else 1.0
    flagged = confidence < threshold
    return {
        "threshold": round(threshold, 4),
        "rule": f"highest mirror-averaged top-1 probability below which validation accuracy is <= {target:.0%}",
        "validation_images": len(labels),
        "flagged_fraction": round(float(flagged.mean()), 4),
        "accuracy_flagged": round(float(correct[flagged].mean()), 4) if flagged.any() else None,
        "accuracy_not_flagged": round(float(correct[~flagged].mean()), 4) if (~flagged).any() else None,
    }


PHOTO_TARGET = 0.90  # answers not flagged unsure are right at least this often on the validation photos


def photo_unsure_threshold(probabilities: np.ndarray, labels: np.ndarray, target: float = PHOTO_TARGET) -> dict:
    """The lowest confidence at which the answers at or above it are still >= `target` right on the
    validation photos: flag as few photos as the target allows.

    Photos are where the model is least sure of itself and most often wrong, so a threshold set on
    dataset images alone would let through answers that are right only 70% of the time on photos.
    """
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, correct_sorted = confidence[order], correct[order]
    acc_top = np.cumsum(correct_sorted) / np.arange(1, len(correct_sorted) + 1)  # accuracy of the k most confident
    ok = np.flatnonzero(acc_top >= target)
    k = int(ok[-1]) + 1 if len(ok) else 0
    threshold = float(conf_sorted[k - 1]) if k else 1.0
    kept = confidence >= threshold
    return {
        "threshold": round(threshold, 4),
        "rule": f"lowest mirror-averaged top-1 probability at or above which validation photos are "
                f">= {target:.0%} right",
        "validation_photos": len(labels),
        "flagged_fraction": round(float((~kept).mean()), 4),
        "accuracy_not_flagged": round(float(correct[kept].mean()), 4) if kept.any() else None,
        "accuracy_all": round(float(correct.mean()), 4),
    }


def combined(dataset: dict, photos: dict | None) -> dict:
    """One threshold that meets both rules: the higher of the two."""
    if photos is None:
        return dataset
    threshold = max(dataset["threshold"], photos["threshold"])
    return {"threshold": threshold, "rule": "the higher of the dataset and the photo thresholds",
            "dataset": dataset, "photos": photos}
