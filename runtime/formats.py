"""The one table of model formats. export, evaluate, bench and classify find rows here by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.runtime.errors import ModelError

MODEL_STEM = "fmnist_cnn"


@dataclass(frozen=True)
class Format:
    name: str  # what users type: tflite-int8, onnx-fp32, ...
    kind: str  # keras | tflite | onnx
    precision: str  # fp32 | int8
    filename: str


FORMATS: tuple[Format, ...] = (
    Format("keras", "keras", "fp32", f"{MODEL_STEM}.keras"),
    Format("tflite-fp32", "tflite", "fp32", f"{MODEL_STEM}_fp32.tflite"),
    Format("tflite-int8", "tflite", "int8", f"{MODEL_STEM}_int8.tflite"),
    Format("onnx-fp32", "onnx", "fp32", f"{MODEL_STEM}_fp32.onnx"),
    Format("onnx-int8", "onnx", "int8", f"{MODEL_STEM}_int8.onnx"),
)
EXPORTED = tuple(f for f in FORMATS if f.kind != "keras")
DEFAULT_FORMAT = "tflite-int8"  # the bundled default: what classify runs, what the golden scores come from


def by_name(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise ModelError(f"unknown format {name!r}; choose from {', '.join(f.name for f in FORMATS)}")


def kind_of(path: Path) -> str:
    """The backend kind a file needs, from its suffix."""
    suffix = Path(path).suffix.lower()
    for kind in ("keras", "tflite", "onnx"):
        if suffix == f".{kind}":
            return kind
    raise ModelError(f"{path}: unknown model type {suffix or '(no suffix)'}; expected .tflite, .onnx or .keras")


def default_format(kind: str | None = None, precisions: tuple[str, ...] | None = None) -> Format:
    """The bundled model to run when none is named: DEFAULT_FORMAT, or for a backend that runs
    another kind of file (onnxruntime) or only some precisions (numpy: fp32), the model of that
    kind in the first precision it runs, int8 first when it runs int8. The one place that decides it
    (a registry row passes its kind and precisions)."""
    default = by_name(DEFAULT_FORMAT)
    kind = kind or default.kind
    precisions = precisions or (default.precision,)
    if default.precision in precisions:  # int8 wherever the backend runs it: smaller, and the golden model
        precisions = (default.precision, *precisions)
    for precision in precisions:
        for fmt in EXPORTED:
            if fmt.kind == kind and fmt.precision == precision:
                return fmt
    raise ModelError(f"no bundled {' or '.join(precisions)} model of kind {kind!r}")
