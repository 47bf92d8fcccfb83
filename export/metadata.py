"""Labels, input contract, preprocessing version and "unsure" threshold, written into each model file.

ONNX keeps them in `metadata_props`; TFLite in a named entry of the flatbuffer's metadata table
(the same mechanism TFLite's own metadata uses), holding UTF-8 JSON. The runtime reads both
back with `fmnist_edge.runtime.model_info`.
"""

from __future__ import annotations

import json

from fmnist_edge.runtime.model_info import METADATA_KEY
from fmnist_edge.runtime.spec import CLASS_NAMES, PREPROCESS_VERSION, input_contract
from fmnist_edge.runtime.version import VERSION


def model_metadata(precision: str, unsure_threshold: float | None = None) -> dict[str, object]:
    """The contract a runtime checks before running the model (None: no calibrated threshold)."""
    return {
        "producer": f"fmnist-edge {VERSION}",
        "labels": list(CLASS_NAMES),
        "input": input_contract(),
        "precision": precision,
        "preprocess_version": PREPROCESS_VERSION,
        "unsure_threshold": unsure_threshold,
    }


def set_metadata(model_bytes: bytes, kind: str, metadata: dict[str, object]) -> bytes:
    """The serialized model with its fmnist-edge metadata replaced; the graph is untouched."""
    if kind == "tflite":
        return add_to_tflite(model_bytes, metadata)
    import onnx

    proto = onnx.load_from_string(model_bytes)
    add_to_onnx(proto, metadata)
    return proto.SerializeToString()


def add_to_tflite(model_bytes: bytes, metadata: dict[str, object]) -> bytes:
    """Write `metadata` as the named entry, replacing the entry of that name if there is one."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    data = list(json.dumps(metadata).encode("utf-8"))
    for entry in model.metadata or []:
        name = entry.name.decode("utf-8") if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_KEY:
            model.buffers[entry.buffer].data = data
            break
    else:
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_KEY
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def add_to_onnx(model, metadata: dict[str, object]) -> None:
    """Set metadata_props in place on an onnx.ModelProto."""
    del model.metadata_props[:]
    for key, value in {METADATA_KEY: json.dumps(metadata), "labels": json.dumps(list(CLASS_NAMES))}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
