"""Read the metadata that export embedded in a model file, without TensorFlow."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from fmnist_edge.runtime.errors import ModelError, reraise_as
from fmnist_edge.runtime.formats import kind_of

METADATA_KEY = "fmnist_edge"


def read_metadata(path: Path) -> dict[str, object]:
    """The embedded metadata dict, or {} when the model carries none."""
    path = Path(path)
    kind = kind_of(path)
    # struct.error: a file that is not a flatbuffer
    with reraise_as(ModelError, f"{path}: cannot read model metadata", OSError, ValueError, IndexError, struct.error):
        if kind == "tflite":
            return _tflite_metadata(path.read_bytes())
        if kind == "onnx":
            return _onnx_metadata(path)
    return {}


def _tflite_metadata(data: bytes) -> dict[str, object]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_KEY:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(raw).decode("utf-8"))
    return {}


def _onnx_metadata(path: Path) -> dict[str, object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime raises its own untyped errors for bad files
    with reraise_as(ModelError, f"{path}: not a valid ONNX model", Exception):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else {}
