"""Parity: does a converted model still mean what the Keras model meant?

This is library code on purpose: `export` calls it before writing anything and refuses a model
that fails, and the test suite calls the same function on the committed artifacts.

The tolerances, and why they are what they are, live in export/options.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fmnist_edge.common.errors import ParityError
from fmnist_edge.export.options import FLOAT, INT8, Tolerance

__all__ = ["FLOAT", "INT8", "ParityReport", "Tolerance", "compare", "require"]



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
