"""The one table of interpreter backends. backends, machine, doctor, bench, selftest, export and the
CLI read their rows here, found by name; none of them keeps its own list or dict of backend names.

A row says what `--backend` accepts, what must import for it, which distribution reports its
version, how to install it, which model files it runs, and which class opens a file. Rows are in
priority order: `--backend auto` opens a file with the first installed row of its kind, so LiteRT
is preferred to tflite-runtime.

Adding a backend is one row. A pure-numpy interpreter, for example, would be
`Row("numpy", "numpy", "numpy", "tflite", "fmnist_edge.runtime.numpy_backend:NumpyBackend", ...)`,
placed last so that it only runs a .tflite file when no real interpreter is installed (or when
asked for by name). The class named by `opener` is imported only when a file is opened with it,
and is called as `cls(path, threads, row)`; it must satisfy `backends.Backend`.

This module imports nothing beyond the standard library and our error classes, so the CLI can build its help from it
without paying for numpy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fmnist_edge.runtime.errors import UsageError


@dataclass(frozen=True)
class Row:
    name: str  # what --backend accepts, and what results and reports call it
    module: str  # what must import for it to run
    package: str  # the distribution whose version is reported
    kind: str  # the model files it runs: tflite | onnx (formats.py's kinds)
    opener: str  # "module:Class" called as Class(path, threads, row)
    install: str  # one line on how to get it (doctor shows it when missing)
    extra: str | None = None  # our pip extra that installs it, when there is one
    alternatives: str = ""  # appended to the "not installed" error: what else would do

    def open_class(self) -> type:
        """The class that opens a file with this backend, imported now (not when the table is read)."""
        module, _, attr = self.opener.partition(":")
        return getattr(importlib.import_module(module), attr)


BACKENDS: tuple[Row, ...] = (
    Row("litert", "ai_edge_litert.interpreter", "ai-edge-litert", "tflite",
        "fmnist_edge.runtime.backends:TFLiteBackend", "pip install ai-edge-litert",
        alternatives=' (or tflite-runtime, with numpy<2); or run the ONNX model: pip install "fmnist-edge[onnx]" '
                     "and --backend onnxruntime"),
    Row("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime", "tflite",
        "fmnist_edge.runtime.backends:TFLiteBackend", "optional; its wheels need numpy<2 and Python <= 3.11",
        alternatives=" (it needs numpy<2)"),
    Row("onnxruntime", "onnxruntime", "onnxruntime", "onnx",
        "fmnist_edge.runtime.backends:OnnxBackend", 'pip install "fmnist-edge[onnx]"', extra="onnx"),
)
NAMES: tuple[str, ...] = tuple(row.name for row in BACKENDS)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(row.kind for row in BACKENDS))  # the file kinds some backend runs


def row(name: str) -> Row:
    """The row called `name`; a name not in the table is a usage error naming the choices."""
    for candidate in BACKENDS:
        if candidate.name == name:
            return candidate
    raise UsageError(f"unknown backend {name!r}; choose from auto, {', '.join(NAMES)}")


def for_kind(kind: str) -> tuple[Row, ...]:
    """The rows that run `kind` files, in priority order."""
    return tuple(r for r in BACKENDS if r.kind == kind)


def choices() -> str:
    """'auto, litert, tflite-runtime or onnxruntime': for --backend's help."""
    return ", ".join(("auto", *NAMES[:-1])) + f" or {NAMES[-1]}"
