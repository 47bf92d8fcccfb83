"""Parity: does a converted model still mean what the Keras model meant?

This is library code on purpose: `export` calls it before writing anything and refuses a model
that fails, and the test suite calls the same function on the committed artifacts.

Tolerances. Float formats must agree on every test argmax and stay within 1e-3 of the Keras
logits: float32 conversion reorders sums (and folds BatchNorm), which moves logits of magnitude
~10 by ~1e-5, so 1e-3 leaves room for a different CPU's kernels while still catching a wrong op.
int8 models are judged as quantized models are: accuracy within 0.3 percentage points of the
float model and the same top-1 on at least 99% of the test images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fmnist_edge.common.errors import ParityError

FLOAT_MAX_ABS_DIFF = 1e-3
FLOAT_MIN_AGREEMENT = 1.0
INT8_MAX_ACCURACY_DROP_PP = 0.3
INT8_MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float | None  # None: not checked (quantized scores move by design)
    min_agreement: float
    max_accuracy_drop_pp: float | None


FLOAT = Tolerance(FLOAT_MAX_ABS_DIFF, FLOAT_MIN_AGREEMENT, None)
INT8 = Tolerance(None, INT8_MIN_AGREEMENT, INT8_MAX_ACCURACY_DROP_PP)


@dataclass
class ParityReport:
    name: str
    accuracy: float
    reference_accuracy: float
    agreement: float  # fraction of images with the same top-1 as the reference
    max_abs_diff: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def accuracy_delta_pp(self) -> float:
        return 100.0 * (self.accuracy - self.reference_accuracy)

    def summary(self) -> str:
        verdict = "ok" if self.passed else "FAILED: " + "; ".join(self.failures)
        return (
            f"{self.name}: accuracy {100 * self.accuracy:.2f}% ({self.accuracy_delta_pp:+.2f} pp), "
            f"top-1 agreement {100 * self.agreement:.2f}%, max |Δ score| {self.max_abs_diff:.2e} — {verdict}"
        )


def compare(
    name: str,
    scores: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    tolerance: Tolerance,
) -> ParityReport:
    """Compare a candidate's scores [N, 10] with the reference scores on the same images."""
    if scores.shape != reference.shape:
        raise ParityError(f"{name}: scores shape {scores.shape} differs from reference {reference.shape}")
    pred, ref_pred = scores.argmax(1), reference.argmax(1)
    report = ParityReport(
        name=name,
        accuracy=float((pred == labels).mean()),
        reference_accuracy=float((ref_pred == labels).mean()),
        agreement=float((pred == ref_pred).mean()),
        max_abs_diff=float(np.abs(scores - reference).max()),
    )
    if report.agreement < tolerance.min_agreement:
        report.failures.append(
            f"top-1 agreement {100 * report.agreement:.2f}% < {100 * tolerance.min_agreement:.2f}%"
        )
    if tolerance.max_abs_diff is not None and report.max_abs_diff >= tolerance.max_abs_diff:
        report.failures.append(f"max |Δ score| {report.max_abs_diff:.2e} >= {tolerance.max_abs_diff:.0e}")
    drop = -report.accuracy_delta_pp
    if tolerance.max_accuracy_drop_pp is not None and drop > tolerance.max_accuracy_drop_pp:
        report.failures.append(f"accuracy drop {drop:.2f} pp > {tolerance.max_accuracy_drop_pp} pp")
    return report


def require(report: ParityReport) -> ParityReport:
    """Raise ParityError unless the report passed."""
    if not report.passed:
        raise ParityError(report.summary())
    return report
