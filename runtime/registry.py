"""The one table of interpreter backends. backends, machine, doctor, bench, selftest, export and the
CLI read their rows here, found by name; none of them keeps its own list or dict of backend names.

A row says what `--backend` accepts, what must import for it, which distribution reports its
version, how to install it, which model files (kind and precision) it runs, and which class opens
a file. Rows are in priority order, and `--backend auto` is nothing but that order:

  * no model named (classify, selftest): the first row whose module imports, with the bundled
    model it runs (`auto()`, then formats.default_format(row.kind, row.precisions));
  * a model named: the first importing row of that file's kind (`auto(kind)`).

So LiteRT is preferred to tflite-runtime, onnxruntime (its own kind of file) comes next, and the
pure-numpy interpreter, last, is the fallback when none of them imports: it always imports where
the runtime does, and runs only the float .tflite, so the fallback picks the float model by itself.
doctor prints the same choice and, for every other row, why it is not the one used.

Adding a backend is one row. The class named by `opener` is imported only when a file is opened
with it, and is called as `cls(path, threads, row)`; it must satisfy `backends.Backend`.

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
    precisions: tuple[str, ...] = ("int8", "fp32")  # model precisions it runs, the one it prefers first

    def runs(self, precision: str | None) -> bool:
        """Whether it runs a model of `precision`; an unknown precision is left to the opener to judge."""
        return precision in (None, "unknown") or precision in self.precisions

    def imports(self) -> bool:
        """Whether its module imports now. Any exception counts as no: a binary wheel built for
        another numpy raises ImportError, AttributeError or RuntimeError, and auto must pass it by."""
        try:
            importlib.import_module(self.module)
        except Exception:
            return False
        return True

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
        "fmnist_edge.runtime.backends:TFLiteBackend",
        'pip install "fmnist-edge[tflite-runtime]" (numpy<2, Python <= 3.11, Linux only)', extra="tflite-runtime",
        alternatives=" (it needs numpy<2 and Python <= 3.11)"),
    Row("onnxruntime", "onnxruntime", "onnxruntime", "onnx",
        "fmnist_edge.runtime.backends:OnnxBackend", 'pip install "fmnist-edge[onnx]"', extra="onnx"),
    # The pure-numpy interpreter (runtime/numpy_backend.py): float .tflite models only, since int8
    # kernels would have to match the interpreters' integer rounding. numpy is a dependency of the
    # runtime itself, so this row always imports: last in the order, it is auto's fallback when no
    # interpreter above does (32-bit Pi OS, a Python with no wheels), and --backend numpy names it.
    Row("numpy", "numpy", "numpy", "tflite", "fmnist_edge.runtime.numpy_backend:NumpyBackend",
        "pip install numpy (a dependency of fmnist-edge)", precisions=("fp32",)),
)
NAMES: tuple[str, ...] = tuple(row.name for row in BACKENDS)
# --threads: LiteRT segfaulted at 50000 threads and raised on 2**31; no CPU we run on has more
# than this many cores, so a larger number is a mistake, refused before any interpreter sees it.
MAX_THREADS = 256
KINDS: tuple[str, ...] = tuple(dict.fromkeys(row.kind for row in BACKENDS))  # the file kinds some backend runs


def row(name: str) -> Row:
    """The row called `name`; a name not in the table is a usage error naming the choices."""
    for candidate in BACKENDS:
        if candidate.name == name:
            return candidate
    raise UsageError(f"unknown backend {name!r}; choose from auto, {', '.join(NAMES)}")


def check_threads(threads: int | None) -> None:
    """None means every core; anything else must be 1..MAX_THREADS (a usage error otherwise)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads {threads!r}: choose 1 to {MAX_THREADS} (or leave it out for all cores)")


def for_kind(kind: str) -> tuple[Row, ...]:
    """The rows that run `kind` files, in priority order."""
    return tuple(r for r in BACKENDS if r.kind == kind)


def auto(kind: str | None = None) -> Row | None:
    """What `--backend auto` uses: the first row (of `kind`, when a model file is named) whose module
    imports; None when none does. On the usual install the first row imports and nothing else is tried."""
    return next((r for r in BACKENDS if (kind is None or r.kind == kind) and r.imports()), None)


def choices() -> str:
    """'auto, litert, tflite-runtime, onnxruntime or numpy': for --backend's help."""
    return ", ".join(("auto", *NAMES[:-1])) + f" or {NAMES[-1]}"
