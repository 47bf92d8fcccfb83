"""What an export may be asked for, and the parity it must pass: plain dataclasses, importable by the
CLI for its defaults without numpy, TensorFlow or the converters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXPORT_OUT = Path("exports")  # where `export` writes unless --out names a folder; git ignores it

# Float formats must agree on every test argmax and stay within 1e-3 of the Keras logits: float32
# conversion reorders sums (and folds BatchNorm), which moves logits of magnitude ~10 by ~1e-5, so
# 1e-3 leaves room for a different CPU's kernels while still catching a wrong op. int8 models are
# judged as quantized models are: accuracy within 0.3 pp of the float model, the same top-1 on >= 99%.
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


@dataclass(frozen=True)
class ExportOptions:
    kinds: tuple[str, ...] = ("tflite", "onnx")
    int8: bool = False
    calibration_size: int = 500
    seed: int = 0
    force: bool = False
    batch_size: int = 500
    photos: Path | None = None  # labelled photos with a `val` split: the unsure threshold must hold on them too
    # Tests of tiny smoke models relax these; the CLI never does, so nothing weaker ships.
    fp32_tolerance: Tolerance = FLOAT
    int8_tolerance: Tolerance = INT8

    def tolerance(self, precision: str) -> Tolerance:
        return self.int8_tolerance if precision == "int8" else self.fp32_tolerance
