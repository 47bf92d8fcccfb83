"""The `numpy` backend: the float .tflite model executed op by op in numpy, with no interpreter.

Why: it is the classifier of last resort, where no LiteRT, tflite-runtime or onnxruntime wheel
installs (32-bit Raspberry Pi OS, new Pythons, odd platforms), so it needs nothing compiled
beyond numpy. It reads the model with runtime/tflite_reader.py and runs the float model only:
int8 kernels would need integer arithmetic matching the interpreters' rounding, and a float
graph in float32 matches LiteRT's fp32 scores to ~1e-5 (tests/test_numpy_backend.py).

It runs the ops our exporter's models are made of (train/model.py's conv/BN/ReLU/pool/GAP/dense
family through export/convert.py), each checked against LiteRT on small Keras models in
tests/test_numpy_backend_ops.py, and refuses any other op or option in one line naming it:
- MUL, ADD: the normalization layer (Rescaling); two live operands and a fused RELU too.
- CONV_2D: Conv2D with BatchNormalization folded in, ReLU fused; SAME or VALID, any stride.
- MAX_POOL_2D: MaxPooling2D, VALID (the family's, odd sizes included) or SAME.
- MEAN: GlobalAveragePooling2D, keepdims or not. FULLY_CONNECTED: Dense, no or RELU activation.
Removed, since no model of that family contains them (checked by converting 1- to 5-stage ones):
AVERAGE_POOL_2D, RESHAPE, SOFTMAX, standalone RELU and RELU6, the fused RELU6 activation and
FULLY_CONNECTED's keep_num_dims (which Keras never sets: a Dense on 4-D input converts to a
RESHAPE chain). An untested kernel is a wrong answer waiting for a model that uses it.

Convolutions are im2col + one float32 matmul per layer, so the time goes to BLAS (~1 ms per
image at one thread on x86 at batch 32). `threads` limits the BLAS pool during `run` (see
runtime/blas_threads.py); the rest of the work is single-threaded numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fmnist_edge.runtime.blas_threads import blas_threads
from fmnist_edge.runtime.contract import check_io, check_scores
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.registry import Row
from fmnist_edge.runtime.spec import NUM_CLASSES
from fmnist_edge.runtime.tflite_reader import Graph, Operator, read_graph

# Images per pass through the graph: bigger batches only grow the im2col buffers (14 MB per 32
# images at the second layer) past the caches; measured 1.9 ms/image at batch 256 unchunked.
CHUNK = 64
Kernel = Callable[[list[np.ndarray]], np.ndarray]  # the op's non-constant inputs -> its output


class NumpyBackend:
    """A float .tflite run op by op; registry.py's `numpy` row opens files with it."""

    name = "numpy"

    def __init__(self, path: Path, threads: int | None = None, row: Row | None = None) -> None:
        path = Path(path)
        if row is not None:
            self.name = row.name
        try:
            graph = read_graph(path)
        except ModelError as exc:
            raise ModelError(f"{exc} (use the float model, {_FLOAT_MODEL})" if "float32" in str(exc) else str(exc)) \
                from None
        check_io(path, [(graph.tensors[i].shape, graph.tensors[i].dtype.name) for i in graph.inputs],
                 [(graph.tensors[o].shape, graph.tensors[o].dtype.name) for o in graph.outputs])
        if any(t.quantized for t in graph.tensors):
            raise ModelError(f"{path}: a quantized model; the numpy backend runs the float model, {_FLOAT_MODEL}")
        self._graph = graph
        self._steps = [_compile(graph, i, op) for i, op in enumerate(graph.operators)]
        self._threads = threads
        self._path = path

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, 28, 28, 1] -> float32 scores [N, 10]."""
        with blas_threads(self._threads):
            chunks = [self._run(pixels[i : i + CHUNK]) for i in range(0, len(pixels), CHUNK)]
        scores = np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES), dtype=np.float32)
        return check_scores(self._path, scores, len(pixels))

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        values: dict[int, np.ndarray] = {self._graph.inputs[0]: pixels.astype(np.float32)}
        for inputs, output, kernel in self._steps:
            values[output] = kernel([values[i] for i in inputs])
        out = np.asarray(values[self._graph.outputs[0]], dtype=np.float32)
        return check_scores(self._path, out, len(pixels))


_FLOAT_MODEL = by_name("tflite-fp32").filename  # what a refusal points to


def _compile(graph: Graph, index: int, op: Operator) -> tuple[list[int], int, Kernel]:
    """Bind the op's constant inputs (weights, axes) now, so `run` only passes activations."""
    if len(op.outputs) != 1:
        raise ModelError(f"operator {index} ({op.op}) has {len(op.outputs)} outputs; expected 1")
    const = {i: graph.tensors[t].data for i, t in enumerate(op.inputs) if t >= 0 and graph.tensors[t].data is not None}
    live = [t for i, t in enumerate(op.inputs) if t >= 0 and i not in const]
    build = _BUILDERS[op.op]
    try:
        kernel = build(op.options, const)
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"operator {index} ({op.op}) has inputs the numpy backend cannot run ({exc})") from None
    return live, op.outputs[0], kernel


def _activate(x: np.ndarray, activation: object) -> np.ndarray:
    """A fused activation, in place: the reader lets through only None and RELU."""
    if activation == "RELU":
        np.maximum(x, 0, out=x)
    return x


def _pads(size: int, kernel: int, stride: int, padding: object) -> tuple[int, int, int]:
    """Output size and (before, after) padding, as TFLite computes them."""
    if padding == "VALID":
        return (size - kernel) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, padding: object, fill: float) -> np.ndarray:
    """A strided view [N, OH, OW, KH, KW, C] of the (padded) input: no copy until it is used."""
    n, h, w, c = x.shape
    oh, top, bottom = _pads(h, kh, sh, padding)
    ow, left, right = _pads(w, kw, sw, padding)
    if top or bottom or left or right:
        padded = np.full((n, h + top + bottom, w + left + right, c), fill, dtype=x.dtype)
        padded[:, top : top + h, left : left + w] = x
        x = padded
    s = x.strides
    return as_strided(x, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]), writeable=False)


def _conv(options: dict, const: dict) -> Kernel:
    filters = const[1]  # [O, KH, KW, I]
    o, kh, kw, i = filters.shape
    weights = np.ascontiguousarray(filters.transpose(1, 2, 3, 0).reshape(kh * kw * i, o), dtype=np.float32)
    bias = const.get(2)
    sh, sw = int(options["stride_h"]), int(options["stride_w"])

    def conv(args: list[np.ndarray]) -> np.ndarray:
        x = args[0]
        if x.shape[3] != i:
            raise ModelError(f"CONV_2D expects {i} input channels, got {x.shape[3]}")
        patches = _windows(x, kh, kw, sh, sw, options["padding"], 0.0)
        n, oh, ow = patches.shape[:3]
        y = patches.reshape(n * oh * ow, kh * kw * i) @ weights  # the reshape copies: that is the im2col
        if bias is not None:
            y += bias
        return _activate(y, options["activation"]).reshape(n, oh, ow, o)

    return conv


def _max_pool(options: dict, _const: dict) -> Kernel:
    kh, kw = int(options["filter_h"]), int(options["filter_w"])
    sh, sw, padding = int(options["stride_h"]), int(options["stride_w"]), options["padding"]

    def pool(args: list[np.ndarray]) -> np.ndarray:
        taps = _windows(args[0], kh, kw, sh, sw, padding, -np.inf)  # SAME padding never wins a max
        # One strided slice per tap, combined in place: faster than reducing over the window axes.
        y = taps[:, :, :, 0, 0].copy()
        for dy in range(kh):
            for dx in range(kw):
                if dy or dx:
                    np.maximum(y, taps[:, :, :, dy, dx], out=y)
        return _activate(np.ascontiguousarray(y, dtype=np.float32), options["activation"])

    return pool


def _fully_connected(options: dict, const: dict) -> Kernel:
    weights = np.ascontiguousarray(const[1].T, dtype=np.float32)  # stored [O, I]
    bias = const.get(2)

    def fc(args: list[np.ndarray]) -> np.ndarray:
        y = args[0].reshape(-1, weights.shape[0]) @ weights  # [N, C] (the reader refuses keep_num_dims)
        if bias is not None:
            y += bias
        return _activate(y, options["activation"])

    return fc


def _binary(ufunc: np.ufunc) -> Callable[[dict, dict], Kernel]:
    def build(options: dict, const: dict) -> Kernel:
        def apply(args: list[np.ndarray]) -> np.ndarray:
            it = iter(args)
            a = const[0] if 0 in const else next(it)
            b = const[1] if 1 in const else next(it)
            return _activate(ufunc(a, b, dtype=np.float32), options["activation"])

        return apply

    return build


def _mean(options: dict, const: dict) -> Kernel:
    axes = tuple(int(a) for a in np.atleast_1d(const[1]))

    def mean(args: list[np.ndarray]) -> np.ndarray:
        return args[0].mean(axis=axes, dtype=np.float32, keepdims=bool(options["keep_dims"]))

    return mean


# One kernel per op of tflite_reader.OPS, which refuses every other op before it gets here.
_BUILDERS: dict[str, Callable[[dict, dict], Kernel]] = {
    "CONV_2D": _conv,
    "MAX_POOL_2D": _max_pool,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary(np.add),
    "MUL": _binary(np.multiply),
    "MEAN": _mean,
}
