"""A narrow seam between the classifier and the interpreters: load a file, run a batch of pixels.

Every backend takes uint8 pixels [N, 28, 28, 1] and returns float32 scores [N, 10]. Quantized
input and output tensors are handled here, from the scale and zero point stored in the model,
so callers never see int8. Which backends exist, and which one opens a file, is registry.py's
table; this module holds the adapters and the choice.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from fmnist_edge.runtime import registry
from fmnist_edge.runtime.contract import check_io, check_scores
from fmnist_edge.runtime.errors import MissingExtraError, ModelError, reraise_as
from fmnist_edge.runtime.formats import kind_of
from fmnist_edge.runtime.spec import INPUT_SHAPE


class Backend(Protocol):
    """What every interpreter adapter offers; registry.py lists the ones there are."""

    name: str  # the registry row's name (or "keras" for train/evaluate.py's adapter)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, 28, 28, 1] -> float32 scores [N, 10]."""
        ...


def _quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    if x.dtype == dtype and scale == 1.0 and zero_point == 0:
        return x  # uint8 pixels into a uint8 input with unit scale (our int8 models): nothing to convert
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def cores() -> int:
    """CPUs this process may run on (the affinity mask, which containers and taskset narrow): "all cores"."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TFLiteBackend:
    """A .tflite file on LiteRT or tflite-runtime (the registry row says which module to import)."""

    def __init__(self, path: Path, threads: int | None, row: registry.Row) -> None:
        self.name = row.name
        interpreter_cls = importlib.import_module(row.module).Interpreter
        # The interpreters raise ValueError, RuntimeError and (from pybind) others for bad files:
        # every one of them is a model that cannot be used, exit 2, not a traceback.
        with reraise_as(ModelError, f"{path}: not a valid TFLite model", Exception):
            self._interp = interpreter_cls(model_path=str(path), num_threads=threads or cores())
            inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        check_io(path, [(list(d["shape_signature"]), np.dtype(d["dtype"]).name) for d in inputs],
                 [(list(d["shape_signature"]), np.dtype(d["dtype"]).name) for d in outputs])
        inp, out = inputs[0], outputs[0]
        if np.issubdtype(out["dtype"], np.integer) and not out["quantization"][0] > 0:
            raise ModelError(f"{path}: integer output without a quantization scale; its scores cannot be read")
        self._in, self._out, self._path = inp, out, Path(path)
        with _quiet_native_stderr(), reraise_as(ModelError, f"{path}: the interpreter cannot prepare the model",
                                                Exception):
            self._interp.allocate_tensors()  # LiteRT logs "INFO: Created ... XNNPACK delegate" here
        self._batch = int(inp["shape"][0])

    def run(self, pixels: np.ndarray) -> np.ndarray:
        n = len(pixels)
        if n != self._batch:
            # XNNPACK says "failed to reshape runtime" when memory runs out
            with reraise_as(ModelError, f"{self._path.name}: the interpreter cannot prepare a batch of {n} "
                            "(is memory limited?)", Exception):
                self._interp.resize_tensor_input(self._in["index"], [n, *INPUT_SHAPE])
                self._interp.allocate_tensors()
            self._batch = n
        scale, zero = self._in["quantization"]
        with reraise_as(ModelError, f"{self._path.name}: the interpreter failed", Exception):
            self._interp.set_tensor(self._in["index"], _quantize(pixels, self._in["dtype"], scale, zero))
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out["index"])
        check_scores(self._path, raw, n)
        scale, zero = self._out["quantization"]
        if np.issubdtype(raw.dtype, np.integer):
            return (raw.astype(np.float32) - zero) * scale
        return raw.astype(np.float32)


_ONNX_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


class OnnxBackend:
    """A .onnx file on onnxruntime's CPU provider."""

    def __init__(self, path: Path, threads: int | None, row: registry.Row) -> None:
        self.name = row.name
        ort = importlib.import_module(row.module)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # onnxruntime raises its own untyped errors for bad files
        with reraise_as(ModelError, f"{path}: not a valid ONNX model", Exception):
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        check_io(path, [(list(i.shape), _ONNX_TYPES.get(i.type, i.type)) for i in inputs],
                 [(list(o.shape), _ONNX_TYPES.get(o.type, o.type)) for o in outputs])
        if outputs[0].type != "tensor(float)":  # no scale and zero point to read integer scores with
            raise ModelError(f"{path}: model output type {outputs[0].type} is not float32")
        self._input, self._path = inputs[0].name, Path(path)
        self._dtype = np.dtype(_ONNX_TYPES[inputs[0].type])

    def metadata(self) -> dict[str, object]:
        """The metadata export embedded, from the session already open (a second session costs a load)."""
        import json

        from fmnist_edge.runtime.model_info import METADATA_KEY

        props = self._session.get_modelmeta().custom_metadata_map
        with reraise_as(ModelError, f"{self._path}: unreadable model metadata", ValueError):
            return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else {}

    def run(self, pixels: np.ndarray) -> np.ndarray:
        with reraise_as(ModelError, f"{self._path.name}: the interpreter failed", Exception):
            scores = self._session.run(None, {self._input: pixels.astype(self._dtype)})[0]
        return check_scores(self._path, scores, len(pixels)).astype(np.float32, copy=False)


def load_backend(path: Path, threads: int | None = None, backend: str | None = None) -> Backend:
    """Open a model file with the backend named by `backend`, or with "auto"/None the first
    installed backend in the registry's priority order that runs the file's kind.

    `threads` None means every core this process may use.
    """
    path = Path(path)
    registry.check_threads(threads)
    kind = kind_of(path)
    if kind not in registry.KINDS:
        raise ModelError(f"{path}: .{kind} models need TensorFlow; the runtime runs .tflite and .onnx")
    if backend in (None, "auto"):
        candidates = registry.for_kind(kind)
    else:
        wanted = registry.row(backend)
        if wanted.kind != kind:
            raise ModelError(f"backend {backend} cannot run {path.name}; use a .{wanted.kind} model")
        candidates = (wanted,)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    row = _first_installed(candidates)
    opener = row.open_class()
    if set(row.precisions) >= set(candidates[0].precisions):
        return opener(path, threads, row)
    try:
        return opener(path, threads, row)
    except ModelError as refused:
        # A fallback that runs fewer precisions (numpy: float only) cannot stand in for this file:
        # what is missing is the interpreter it stood in for, and its install command says so.
        first = candidates[0]
        raise MissingExtraError(first.package, first.extra,
                                f"{first.alternatives}; {row.name} cannot stand in: {refused}") from None


def _first_installed(candidates: tuple[registry.Row, ...]) -> registry.Row:
    """The first row whose module imports; when none does, the first row's install command."""
    for row in candidates:
        if row.imports():
            return row
    first = candidates[0]
    raise MissingExtraError(first.package, first.extra, first.alternatives)


def run_batched(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batch: int = 500) -> np.ndarray:
    """run(pixels) in slices of `batch`, concatenated: scores for a whole test set without one
    interpreter allocation (or one Keras call) sized for all of it at once."""
    return np.concatenate([run(pixels[i : i + batch]) for i in range(0, len(pixels), batch)])


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
