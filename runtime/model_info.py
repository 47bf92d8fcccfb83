"""Read the metadata that export embedded in a model file, without TensorFlow."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from fmnist_edge.runtime.errors import ModelError, reraise_as
from fmnist_edge.runtime.formats import kind_of
from fmnist_edge.runtime.manifest_schema import is_number_in
from fmnist_edge.runtime.spec import CLASS_NAMES, PREPROCESS_VERSION, input_contract

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
    from fmnist_edge.runtime.tflite_reader import read_named_metadata

    raw = read_named_metadata(data, METADATA_KEY)
    return {} if raw is None else json.loads(raw.decode("utf-8"))


def check_contract(path: Path, metadata: dict[str, object]) -> None:
    """Refuse, in one line, a model made for another contract than this runtime's: other labels, another
    input (shape, pixel range, normalization), another photo preprocessing, or an unsure threshold
    that is not a probability. A model that carries no metadata (not exported by fmnist-edge) is
    judged by its tensor shapes alone, at load."""
    if not metadata:
        return
    expected = input_contract()
    problems = []
    if metadata.get("labels") not in (None, list(CLASS_NAMES)):
        problems.append(f"labels {metadata.get('labels')} are not this runtime's ten classes")
    version = metadata.get("preprocess_version")
    if version is not None and version != PREPROCESS_VERSION:
        problems.append(f"it was made for photo preprocessing version {version}, this runtime has "
                        f"{PREPROCESS_VERSION} (install the fmnist-edge version that exported it)")
    given = metadata.get("input")
    if isinstance(given, dict):
        for key in ("layout", "shape", "pixel_range", "mean", "std"):
            if key in given and given[key] != expected[key]:
                problems.append(f"input {key} {given[key]} differs from this runtime's {expected[key]}")
    threshold = metadata.get("unsure_threshold")
    if threshold is not None and not is_number_in(threshold, low=0.0, high=1.0):
        problems.append(f"its unsure threshold {threshold!r} is not a number from 0 to 1")
    if problems:
        raise ModelError(f"{path}: cannot be run by this runtime: {'; '.join(problems)}")


def _onnx_metadata(path: Path) -> dict[str, object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime raises its own untyped errors for bad files
    with reraise_as(ModelError, f"{path}: not a valid ONNX model", Exception):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else {}
