"""Read a .tflite file with the standard library and numpy: operators, options, tensors, weights.

Why: the numpy backend must run where no interpreter (and no `flatbuffers` or `tflite` package)
installs, so this reads the flatbuffer by hand. Only what the numpy backend executes is decoded.

Field numbers follow tensorflow/compiler/mlir/lite/schema/schema.fbs (the `schema_v3c` layout
LiteRT's `schema_py_generated` is built from). A flatbuffer table starts with an int32 offset back
to its vtable; vtable slot 4 + 2*i holds the offset of field i inside the table (0: absent, use
the default). A union takes two field numbers: its type byte, then the table. Strings, vectors and
sub-tables are stored as uint32 offsets relative to where the offset itself sits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.errors import ModelError

FILE_IDENTIFIER = b"TFL3"

# enum BuiltinOperator (int32): only the codes the numpy backend can run, which are the ones our exporter's
# models are made of (runtime/numpy_backend.py says which layer gives which).
OPS = {0: "ADD", 3: "CONV_2D", 9: "FULLY_CONNECTED", 17: "MAX_POOL_2D", 18: "MUL", 40: "MEAN"}
# Names of common ops it does not run, so a refusal names the op rather than a number.
UNSUPPORTED = {1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 14: "LOGISTIC",
               19: "RELU", 21: "RELU6", 22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 34: "PAD", 41: "SUB", 42: "DIV",
               114: "QUANTIZE"}
# enum TensorType (byte) -> numpy dtype; names of the others, for the refusal message.
DTYPES = {0: np.dtype(np.float32), 2: np.dtype(np.int32), 4: np.dtype(np.int64)}
TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL", 7: "INT16",
              8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 17: "INT4"}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: None, 1: "RELU"}  # the rest of enum ActivationFunctionType is refused, by name
REFUSED_ACTIVATIONS = {2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# Table field numbers (schema.fbs order).
MODEL_VERSION, MODEL_OPCODES, MODEL_SUBGRAPHS, MODEL_BUFFERS = 0, 1, 2, 4
OPCODE_DEPRECATED, OPCODE_CUSTOM, OPCODE_BUILTIN = 0, 1, 3
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANT, TENSOR_SPARSITY = 0, 1, 2, 3, 4, 6
QUANT_SCALE = 2
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
OP_OPCODE, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS_TYPE, OP_OPTIONS = 0, 1, 2, 3, 4

# Each op's options table: (union type it must carry, {option: (field number, struct format, default)}).
_FUSED = ("B", 0)
OPTIONS: dict[str, tuple[int, dict[str, tuple[int, str, object]]]] = {
    "CONV_2D": (1, {"padding": (0, "B", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                    "activation": (3, *_FUSED), "dilation_w": (4, "i", 1), "dilation_h": (5, "i", 1)}),
    "MAX_POOL_2D": (5, {"padding": (0, "B", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                        "filter_w": (3, "i", 1), "filter_h": (4, "i", 1), "activation": (5, *_FUSED)}),
    "FULLY_CONNECTED": (8, {"activation": (0, *_FUSED), "weights_format": (1, "B", 0),
                            "keep_num_dims": (2, "?", False)}),
    "ADD": (11, {"activation": (0, *_FUSED)}),
    "MUL": (21, {"activation": (0, *_FUSED)}),
    "MEAN": (27, {"keep_dims": (0, "?", False)}),
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]  # as stored: batch 1 where the signature says -1
    dtype: np.dtype
    data: np.ndarray | None  # constant weights, read-only; None for activations
    quantized: bool  # carries a quantization scale: an int8 model's tensor


@dataclass
class Operator:
    op: str  # "CONV_2D", ...
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, object] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class _Reader:
    """Bounds-checked access to flatbuffer tables in one bytes object."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _unpack(self, fmt: str, pos: int) -> object:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.data):
            raise ModelError(f"offset {pos} is outside the file")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def field_pos(self, table: int, number: int) -> int | None:
        vtable = table - int(self._unpack("i", table))
        vtable_size = int(self._unpack("H", vtable))
        slot = 4 + 2 * number
        if slot >= vtable_size:
            return None
        offset = int(self._unpack("H", vtable + slot))
        return table + offset if offset else None

    def scalar(self, table: int, number: int, fmt: str, default: object) -> object:
        pos = self.field_pos(table, number)
        return default if pos is None else self._unpack(fmt, pos)

    def table(self, table: int, number: int) -> int | None:
        pos = self.field_pos(table, number)
        return None if pos is None else pos + int(self._unpack("I", pos))

    def vector(self, table: int, number: int) -> tuple[int, int]:
        """(start of the elements, length); (0, 0) when the field is absent."""
        pos = self.table(table, number)
        if pos is None:
            return 0, 0
        return pos + 4, int(self._unpack("I", pos))

    def tables(self, table: int, number: int) -> list[int]:
        start, n = self.vector(table, number)
        return [start + 4 * i + int(self._unpack("I", start + 4 * i)) for i in range(n)]

    def ints(self, table: int, number: int, fmt: str = "i") -> tuple[int, ...]:
        start, n = self.vector(table, number)
        if start + n * struct.calcsize(fmt) > len(self.data):
            raise ModelError(f"a vector at {start} runs past the end of the file")
        return tuple(int(v) for v in struct.unpack_from(f"<{n}{fmt}", self.data, start))

    def string(self, table: int, number: int) -> str:
        start, n = self.vector(table, number)
        return self.data[start : start + n].decode("utf-8", errors="replace")


MODEL_METADATA, METADATA_NAME, METADATA_BUFFER = 6, 0, 1


def read_named_metadata(data: bytes, name: str) -> bytes | None:
    """The bytes of the metadata entry called `name` (where export writes its JSON), or None.

    Pure Python, so every runtime reads a model's contract the same way, whichever interpreter
    (or none) is installed.
    """
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 identifier)")
    r = _Reader(data)
    try:
        root = int(r._unpack("I", 0))
        buffers = r.tables(root, MODEL_BUFFERS)
        for entry in r.tables(root, MODEL_METADATA):
            if r.string(entry, METADATA_NAME) == name:
                index = int(r.scalar(entry, METADATA_BUFFER, "I", 0))
                if index >= len(buffers):
                    raise ModelError(f"metadata {name!r} names buffer {index} of {len(buffers)}")
                start, size = r.vector(buffers[index], BUFFER_DATA)
                return bytes(data[start : start + size])
    except struct.error as exc:
        raise ModelError(f"corrupt TFLite flatbuffer ({exc})") from None
    return None


def read_graph(path: Path) -> Graph:
    """The model's only subgraph, every op checked against what the numpy backend can run.

    Raises ModelError for a file that is not a TFLite flatbuffer, an op or option outside OPS
    (named, with its position), or a tensor type other than float32 and int32/int64 shapes.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{path}: not a TFLite model (no {FILE_IDENTIFIER.decode()} identifier)")
    try:
        return _parse(_Reader(data), path)
    except struct.error as exc:  # a truncated or corrupt file: offsets that point nowhere
        raise ModelError(f"{path}: corrupt TFLite flatbuffer ({exc})") from None
    except ModelError as exc:
        message = str(exc)
        raise ModelError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _parse(r: _Reader, path: Path) -> Graph:
    root = int(r._unpack("I", 0))
    buffers = r.tables(root, MODEL_BUFFERS)
    opcodes = [_opcode(r, t) for t in r.tables(root, MODEL_OPCODES)]
    subgraphs = r.tables(root, MODEL_SUBGRAPHS)
    if len(subgraphs) != 1:
        raise ModelError(f"{len(subgraphs)} subgraphs; the numpy backend runs single-graph models")
    graph = subgraphs[0]
    tensors = [_tensor(r, i, t, buffers) for i, t in enumerate(r.tables(graph, SUBGRAPH_TENSORS))]
    operators = []
    for i, op in enumerate(r.tables(graph, SUBGRAPH_OPERATORS)):
        code = int(r.scalar(op, OP_OPCODE, "I", 0))
        if code >= len(opcodes):
            raise ModelError(f"operator {i} names opcode {code} of {len(opcodes)}")
        operators.append(_operator(r, i, op, opcodes[code], tensors))
    return Graph(tensors, operators, r.ints(graph, SUBGRAPH_INPUTS), r.ints(graph, SUBGRAPH_OUTPUTS))


def _opcode(r: _Reader, table: int) -> str:
    # builtin_code (int32) superseded deprecated_builtin_code (byte, capped at 127); take the larger.
    code = max(int(r.scalar(table, OPCODE_BUILTIN, "i", 0)), int(r.scalar(table, OPCODE_DEPRECATED, "b", 0)))
    if r.field_pos(table, OPCODE_CUSTOM) is not None:
        return f"custom op {r.string(table, OPCODE_CUSTOM)!r}"
    return OPS.get(code) or UNSUPPORTED.get(code, f"builtin op {code}")


def _tensor(r: _Reader, index: int, table: int, buffers: list[int]) -> Tensor:
    name = r.string(table, TENSOR_NAME)
    type_code = int(r.scalar(table, TENSOR_TYPE, "b", 0))
    if type_code not in DTYPES:
        kind = TYPE_NAMES.get(type_code, f"type {type_code}")
        raise ModelError(f"tensor {index} ({name}) is {kind}; the numpy backend runs float32 models only")
    if r.field_pos(table, TENSOR_SPARSITY) is not None:
        raise ModelError(f"tensor {index} ({name}) is sparse; the numpy backend reads dense weights only")
    quant = r.table(table, TENSOR_QUANT)
    quantized = quant is not None and r.vector(quant, QUANT_SCALE)[1] > 0
    shape = r.ints(table, TENSOR_SHAPE)
    dtype = DTYPES[type_code]
    buffer_index = int(r.scalar(table, TENSOR_BUFFER, "I", 0))
    if buffer_index >= len(buffers):
        raise ModelError(f"tensor {index} ({name}) names buffer {buffer_index} of {len(buffers)}")
    return Tensor(index, name, shape, dtype, _buffer(r, buffers[buffer_index], shape, dtype, name), quantized)


def _buffer(r: _Reader, table: int, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray | None:
    start, size = r.vector(table, BUFFER_DATA)
    if size == 0:  # weights over 2 GB live after the flatbuffer, at an absolute offset
        start, size = int(r.scalar(table, BUFFER_OFFSET, "Q", 0)), int(r.scalar(table, BUFFER_SIZE, "Q", 0))
        if start <= 1:  # 0: no data (an activation); 1 is the schema's placeholder for the same
            return None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if size != count * dtype.itemsize or start + size > len(r.data):
        raise ModelError(f"tensor {name}: {size} bytes of data for shape {list(shape)} {dtype}")
    return np.frombuffer(r.data, dtype=dtype.newbyteorder("<"), count=count, offset=start).reshape(shape)


def _operator(r: _Reader, index: int, table: int, op: str, tensors: list[Tensor]) -> Operator:
    if op not in OPS.values():
        raise ModelError(f"operator {index} is {op}, which the numpy backend does not run "
                         f"(it runs {', '.join(sorted(OPS.values()))})")
    inputs, outputs = r.ints(table, OP_INPUTS), r.ints(table, OP_OUTPUTS)
    for t in (*inputs, *outputs):
        if t >= len(tensors) or t < -1:
            raise ModelError(f"operator {index} ({op}) names tensor {t} of {len(tensors)}")
    options: dict[str, object] = {}
    if op in OPTIONS:
        union_type, spec = OPTIONS[op]
        found = int(r.scalar(table, OP_OPTIONS_TYPE, "B", 0))
        sub = r.table(table, OP_OPTIONS)
        if found != union_type or sub is None:
            raise ModelError(f"operator {index} ({op}) carries options of union type {found}, expected {union_type}")
        options = {key: r.scalar(sub, number, fmt, default) for key, (number, fmt, default) in spec.items()}
    _check_options(index, op, options)
    return Operator(op, inputs, outputs, options)


def _check_options(index: int, op: str, options: dict[str, object]) -> None:
    """Refuse option values the numpy kernels do not implement, rather than compute something else."""
    if "activation" in options:
        if options["activation"] not in ACTIVATIONS:
            code = options["activation"]
            raise ModelError(f"operator {index} ({op}) has fused activation {REFUSED_ACTIVATIONS.get(code, code)}; "
                             "the numpy backend runs none and RELU")
        options["activation"] = ACTIVATIONS[options["activation"]]
    if "padding" in options:
        if options["padding"] not in PADDING:
            raise ModelError(f"operator {index} ({op}) has unknown padding {options['padding']}")
        options["padding"] = PADDING[options["padding"]]
    if options.get("dilation_w", 1) != 1 or options.get("dilation_h", 1) != 1:
        raise ModelError(f"operator {index} ({op}) is dilated; the numpy backend runs dilation 1 only")
    if options.get("weights_format", 0) != 0:
        raise ModelError(f"operator {index} ({op}) has shuffled weights; the numpy backend reads the default layout")
    if options.get("keep_num_dims"):
        raise ModelError(f"operator {index} ({op}) has keep_num_dims set; the numpy backend flattens a dense "
                         "layer's input to [N, C]")
