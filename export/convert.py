"""Converters from the Keras model to TFLite and ONNX, float and int8. Each returns bytes in memory;
writing to disk is the pipeline's job, so a failed conversion never touches an artifact.

TFLite goes through a SavedModel (`model.export`), which gives a frozen graph with a dynamic batch
dimension; the int8 model is full-integer with uint8 input, so a device feeds raw pixels.
ONNX goes through tf2onnx from a tf.function; its int8 model is onnxruntime static quantization
(QDQ, per-channel weights) calibrated on the same training images.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.spec import INPUT_SHAPE

ONNX_OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


def saved_model(model, directory: Path) -> Path:
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def tflite_fp32(saved_model_dir: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    return converter.convert()


def tflite_int8(saved_model_dir: Path, calibration: np.ndarray) -> bytes:
    """Full-integer model: int8 weights and activations, uint8 input, int8 output."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for image in calibration:
            yield [image[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    return converter.convert()


def onnx_fp32(model):
    """An onnx.ModelProto with input `pixels` [batch, 28, 28, 1] float32 and output `logits`."""
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(pixels):
        return {OUTPUT_NAME: model(pixels, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[spec], opset=ONNX_OPSET)
    _canonical_names(proto.graph)
    # tf2onnx names the dynamic batch dimension arbitrarily ("unk__53"); give it a readable name.
    for value in (*proto.graph.input, *proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.dim_param = "batch"
    return proto


def _canonical_names(graph) -> None:
    """Renumber the names tf2onnx makes up, in graph order, so that the bytes depend on the model alone.

    tf2onnx numbers the names it inserts ("Conv__38") from a process-wide counter that other work in
    the process also moves, and its doc string names TensorFlow's function id: a second export in one
    process (tests, `export --verify`) would otherwise give other bytes for the same model.
    """
    generated = re.compile(r"^(.*)__(\d+)$")
    renamed: dict[str, str] = {}

    def rename(name: str) -> str:
        base, _, port = name.partition(":")
        match = generated.match(base)
        if not match:
            return name
        if base not in renamed:
            renamed[base] = f"{match.group(1)}__{len(renamed) + 1}"
        return renamed[base] + (":" + port if port else "")

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = rename(value.name)
    graph.doc_string = "converted by tf2onnx from the Keras model"


def onnx_int8(fp32_proto, calibration: np.ndarray):
    """Static QDQ quantization with per-channel int8 weights.

    Weights are quantized to 7 bits (reduce_range): onnxruntime's x86 kernels without VNNI can
    saturate in the u8*s8 multiply otherwise, and a user's CPU may lack VNNI; ARM is unaffected.
    Parity decides whether the cost is acceptable.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._images = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._images, None)
            return None if image is None else {INPUT_NAME: image[None].astype(np.float32)}

    with tempfile.TemporaryDirectory(prefix="fmnist-edge-onnx-") as tmp:
        src, prepped, dst = Path(tmp, "fp32.onnx"), Path(tmp, "prep.onnx"), Path(tmp, "int8.onnx")
        onnx.save(fp32_proto, str(src))
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        quantize_static(
            str(prepped),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(str(dst))
