"""A narrow seam between the classifier and the interpreters: load a file, run a batch of pixels.

Every backend takes uint8 pixels [N, 28, 28, 1] and returns float32 scores [N, 10]. Quantized
input and output tensors are handled here, from the scale and zero point stored in the model,
so callers never see int8.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from fmnist_edge.runtime.errors import MissingExtraError, ModelError
from fmnist_edge.runtime.formats import kind_of
from fmnist_edge.runtime.spec import INPUT_SHAPE, NUM_CLASSES


class Backend(Protocol):
    name: str

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, 28, 28, 1] -> float32 scores [N, 10]."""
        ...


def _check_input_shape(path: Path, shape: list) -> None:
    tail = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else None for d in shape[1:]]
    if len(shape) != 4 or tail != list(INPUT_SHAPE):
        raise ModelError(f"{path}: model input shape {list(shape)} is not [N, 28, 28, 1]")


def _quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    if x.dtype == dtype and scale == 1.0 and zero_point == 0:
        return x  # uint8 pixels into a uint8 input with unit scale (our int8 models): nothing to convert
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


TFLITE_INTERPRETERS = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def _load_tflite_interpreter(preferred: str | None):
    """LiteRT first; tflite-runtime (the predecessor, numpy<2 only) where that is what is installed."""
    import importlib

    names = [preferred] if preferred else list(TFLITE_INTERPRETERS)
    for name in names:
        try:
            return name, importlib.import_module(TFLITE_INTERPRETERS[name]).Interpreter
        except ImportError:
            continue
    if preferred == "tflite-runtime":
        raise MissingExtraError("tflite-runtime", None, " (it needs numpy<2)")
    raise MissingExtraError(
        "ai-edge-litert", None,
        ' (or tflite-runtime, with numpy<2); or run the ONNX model: pip install "fmnist-edge[onnx]" '
        "and --backend onnxruntime",
    )


def cores() -> int:
    """CPUs this process may run on (the affinity mask, which containers and taskset narrow): "all cores"."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TFLiteBackend:
    name = "litert"

    def __init__(self, path: Path, threads: int | None = None, interpreter: str | None = None) -> None:
        self.name, interpreter_cls = _load_tflite_interpreter(interpreter)
        try:
            self._interp = interpreter_cls(model_path=str(path), num_threads=threads or cores())
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a valid TFLite model ({_first_line(exc)})") from None
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        _check_input_shape(path, list(inp["shape_signature"]))
        if int(out["shape"][-1]) != NUM_CLASSES:
            raise ModelError(f"{path}: model has {out['shape'][-1]} outputs, expected {NUM_CLASSES}")
        self._in, self._out, self._path = inp, out, Path(path)
        with _quiet_native_stderr():  # LiteRT logs "INFO: Created ... XNNPACK delegate" here
            self._interp.allocate_tensors()
        self._batch = int(inp["shape"][0])

    def run(self, pixels: np.ndarray) -> np.ndarray:
        n = len(pixels)
        if n != self._batch:
            self._interp.resize_tensor_input(self._in["index"], [n, *INPUT_SHAPE])
            try:
                self._interp.allocate_tensors()
            except RuntimeError as exc:  # XNNPACK says "failed to reshape runtime" when memory runs out
                raise ModelError(f"{self._path.name}: the interpreter cannot prepare a batch of {n} "
                                 f"({_first_line(exc)}); is memory limited?") from None
            self._batch = n
        scale, zero = self._in["quantization"]
        self._interp.set_tensor(self._in["index"], _quantize(pixels, self._in["dtype"], scale, zero))
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out["index"])
        scale, zero = self._out["quantization"]
        if np.issubdtype(raw.dtype, np.integer):
            return (raw.astype(np.float32) - zero) * scale
        return raw.astype(np.float32)


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtraError("onnxruntime", "onnx") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
        inp = self._session.get_inputs()[0]
        _check_input_shape(path, list(inp.shape))
        out_shape = list(self._session.get_outputs()[0].shape)
        if not out_shape or out_shape[-1] != NUM_CLASSES:
            raise ModelError(f"{path}: model output shape {out_shape} is not [N, {NUM_CLASSES}]")
        self._input = inp.name
        self._dtype = np.uint8 if "uint8" in inp.type else np.float32

    def run(self, pixels: np.ndarray) -> np.ndarray:
        scores = self._session.run(None, {self._input: pixels.astype(self._dtype)})[0]
        return np.asarray(scores, dtype=np.float32)


BACKEND_NAMES = ("litert", "tflite-runtime", "onnxruntime", "numpy")  # what --backend accepts, besides auto
BACKEND_KIND = {"litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx", "numpy": "tflite"}
BACKEND_MODULES = {**TFLITE_INTERPRETERS, "onnxruntime": "onnxruntime", "numpy": "fmnist_edge.runtime.numpy_backend"}
BACKEND_PACKAGES = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "onnxruntime": "onnxruntime",
                    "numpy": "numpy"}
BACKEND_PRECISIONS = {"numpy": ("fp32",)}  # backends that run only some precisions; the rest run all


def load_backend(path: Path, threads: int | None = None, backend: str | None = None) -> Backend:
    """Open a model file with the interpreter its suffix calls for (or the one named by `backend`).

    `threads` None means every core this process may use; `backend` None or "auto" picks by suffix,
    and runs a float .tflite on numpy when no TFLite interpreter imports.
    """
    path = Path(path)
    kind = kind_of(path)
    if kind == "keras":
        raise ModelError(f"{path}: .keras models need TensorFlow; the runtime runs .tflite and .onnx")
    if backend == "auto":
        backend = None
    if backend is not None and backend not in BACKEND_NAMES:
        raise ModelError(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKEND_NAMES)}")
    wants_onnx = backend == "onnxruntime"
    if backend is not None and wants_onnx != (kind == "onnx"):
        raise ModelError(f"backend {backend} cannot run {path.name}; use a .{'onnx' if wants_onnx else 'tflite'} model")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    if kind == "onnx":
        return OnnxBackend(path, threads)
    if backend == "numpy":
        from fmnist_edge.runtime.numpy_backend import NumpyBackend

        return NumpyBackend(path, threads)
    try:
        return TFLiteBackend(path, threads, interpreter=backend)
    except MissingExtraError as missing:
        if backend is not None:
            raise
        from fmnist_edge.runtime.fallback import numpy_instead  # no TFLite interpreter imports (runtime/fallback.py)

        return numpy_instead(path, threads, missing)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines written straight to file descriptor 2 (Python exceptions still raise)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
