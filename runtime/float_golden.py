"""selftest's rule for the numpy backend: the float model judged against the int8 golden scores.

Why a rule of its own: golden.npz holds the int8 model's scores, and the numpy backend runs the
float model, so the strict same-file check (1e-4, every top-1) cannot apply. But the distance
between the two is bounded by figures export measured on the full test set, which contains the
golden images: the int8 model's scores are within its manifest `max_abs_diff` of the Keras
model's, the float file's within its own, and the numpy backend is within NUMPY_PARITY of LiteRT
on the float file (tests/test_numpy_backend.py). So a correct install must have

  1. every score within TOLERANCE = int8 max_abs_diff + float max_abs_diff + NUMPY_PARITY, and
  2. the golden top-1 wherever the golden scores' top-1 leads the runner-up by more than
     2 x TOLERANCE (only a closer race can flip without breaking 1).

On the shipped pair the tolerance is 1.40 and the numpy backend lands within 0.13 of the golden
scores, agreeing on all 100 top-1 (72 images are covered by rule 2). A wrong kernel, a broken
BLAS or a misread weight moves scores far more than that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.golden import Golden
from fmnist_edge.runtime.manifest import entry_for, manifest_beside

NUMPY_PARITY = 1e-4  # max |Δ score| of the numpy backend against LiteRT on the float model


@dataclass(frozen=True)
class FloatRule:
    """Rules 1 and 2 above for one float model; `tolerance` is that model's bound, from its manifest."""

    tolerance: float

    def problems(self, scores: np.ndarray, golden: Golden) -> list[str]:
        """What the float scores break of rules 1 and 2 (empty when they pass)."""
        out = []
        worst = float(np.abs(scores - golden.scores).max())
        if worst > self.tolerance:
            out.append(f"float scores differ from the golden scores by up to {worst:.2e} "
                       f"(tolerance {self.tolerance:.3g} for a float model)")
        ranked = np.sort(golden.scores, axis=1)
        clear = ranked[:, -1] - ranked[:, -2] > 2 * self.tolerance
        flipped = int((clear & (scores.argmax(1) != golden.scores.argmax(1))).sum())
        if flipped:
            out.append(f"{flipped}/{int(clear.sum())} clear-cut top-1 differ from the golden scores")
        return out


def float_rule(model: Path, golden: Golden) -> FloatRule | None:
    """The rule for `model`, when it is a float model whose manifest, like the golden model's, records
    its distance from the Keras model; None otherwise (the result is then reported, not judged).
    The Classifier has already read that manifest (it verifies the model's hash against it), so an
    unreadable one never gets this far."""
    manifest = manifest_beside(Path(model)) or {}
    entry = entry_for(manifest, Path(model).name) or {}
    source = entry_for(manifest, golden.model_file) or {}
    if entry.get("precision") != "fp32" or entry.get("max_abs_diff") is None or source.get("max_abs_diff") is None:
        return None
    return FloatRule(float(source["max_abs_diff"]) + float(entry["max_abs_diff"]) + NUMPY_PARITY)
