"""When the numpy backend stands in for an interpreter, and which bundled model it runs then.

Why a module of its own: the choice needs the list of interpreters (runtime/backends.py) and the
bundled files (the format table), and keeping it here leaves backends.py one registration hunk.

The rule: with no --backend (or `auto`), if none of LiteRT, tflite-runtime and onnxruntime
imports, classify, selftest and bench's defaults use the float .tflite on the numpy backend,
because numpy cannot run the int8 default. A .tflite file given with --model falls back to numpy
when no TFLite interpreter imports and the file is a float model; an int8 file keeps the
"not installed" error, which names the install command.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from fmnist_edge.runtime.errors import MissingExtraError, ModelError
from fmnist_edge.runtime.formats import by_name

if TYPE_CHECKING:
    from fmnist_edge.runtime.numpy_backend import NumpyBackend

INTERPRETERS = ("litert", "tflite-runtime", "onnxruntime")  # in the order auto prefers them
FLOAT_FORMAT = "tflite-fp32"  # the bundled file the numpy backend runs


def interpreter_imports() -> bool:
    """True as soon as one interpreter imports (on the usual install, the LiteRT it will use anyway)."""
    from fmnist_edge.runtime.backends import BACKEND_MODULES

    for name in INTERPRETERS:
        try:
            importlib.import_module(BACKEND_MODULES[name])
        except Exception:  # a broken wheel raises ImportError, AttributeError, RuntimeError...
            continue
        return True
    return False


def wants_numpy(backend: str | None) -> bool:
    """Whether the default model should be the float one: --backend numpy, or auto with no interpreter."""
    return backend == "numpy" or (backend in (None, "auto") and not interpreter_imports())


def float_model_name() -> str:
    return by_name(FLOAT_FORMAT).filename


def numpy_instead(path: Path, threads: int | None, missing: MissingExtraError) -> NumpyBackend:
    """The numpy backend on `path`, or `missing` (which names the install) when numpy cannot run it."""
    from fmnist_edge.runtime.numpy_backend import NumpyBackend

    try:
        return NumpyBackend(path, threads)
    except ModelError:  # an int8 model: the interpreter really is what is missing
        raise missing from None
