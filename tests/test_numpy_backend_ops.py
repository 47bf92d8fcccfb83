"""Each op the numpy backend runs, against LiteRT on tiny Keras models converted here; the rest refused.

Why: the shipped model exercises only some kernels and options (tests/test_numpy_backend.py), and an
untested kernel is a wrong answer waiting for the first model that uses it. So every op and option
value the backend accepts must appear in one of these models, with seeded random weights and
images, and match LiteRT's float32 scores; the coverage test fails when an op is added to the
backend without a model here. Per op (runtime/numpy_backend.py has the same list):

- MUL, ADD: kept and tested; the normalization layer (Rescaling) in every exported model.
- CONV_2D: kept and tested; Conv2D + folded BatchNormalization + fused ReLU, SAME, in every model.
- MAX_POOL_2D: kept and tested; the pools between stages (VALID, 7 -> 3 included).
- MEAN: kept and tested; GlobalAveragePooling2D. FULLY_CONNECTED: kept and tested; the Dense head.
- Other values those kernels take with no code of their own (VALID convs, strides, SAME pools,
  two live operands, fused RELU on ADD and Dense, keep_dims) are tested on a second model.
- The shortcuts of `train --residual` (ADD of two live tensors, RELU fused) on train/model.py's own
  network at toy widths.
- AVERAGE_POOL_2D, RESHAPE, SOFTMAX, RELU, RELU6, fused RELU6, keep_num_dims: removed, since no
  model of our family (conv/BN/ReLU/max-pool/GAP/dropout/dense, normalization first) contains them;
  each is refused in one line naming it, as any other op is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.numpy_backend import NumpyBackend
from fmnist_edge.runtime.spec import INPUT_SHAPE, NUM_CLASSES, PIXEL_MEAN, PIXEL_STD
from fmnist_edge.runtime.tflite_reader import OPS, UNSUPPORTED, Graph, read_graph

pytestmark = pytest.mark.slow  # builds and converts Keras models: TensorFlow's start-up alone is seconds

BATCH = 16
# Of the largest score: float32 sums in another order than LiteRT's differ by 2e-7 of it here. Each of
# twelve broken kernels tried was off by 0.02 of it or far more (the least: a SAME max-pool padding
# with 0 or on the wrong side, a pool or conv ignoring its stride).
RELATIVE_TOLERANCE = 1e-5


def _randomize(model: Any, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics and biases, so folding them into the convs is checked too
    (fresh layers hold identity statistics and zero biases, which the converter drops)."""
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c), rng.normal(0, 0.3, c),
                               rng.uniform(0.5, 1.5, c)])
        elif isinstance(layer, (layers.Conv2D, layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.3, bias.shape)])


def _family_model() -> Any:
    """train/model.py's layers at toy widths, with four stages so one pool runs on 7x7 (-> 3x3)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32")
    x = layers.Rescaling(scale=1.0 / (255.0 * PIXEL_STD), offset=-PIXEL_MEAN / PIXEL_STD)(inputs)
    stages = ((4,), (6, 6), (6,), (8,))
    for s, widths in enumerate(stages):
        for width in widths:
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        if s < len(stages) - 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, layers.Dense(NUM_CLASSES)(x))


def _residual_model() -> Any:
    """train/model.py's network with its identity shortcuts, at toy widths: what `train --residual` exports."""
    from fmnist_edge.train.model import ModelConfig, build_model

    return build_model(ModelConfig(stages=((4,), (6, 6, 6), (8, 8)), residual=True))


def _options_model() -> Any:
    """The option values the family does not use but the kept kernels take with no code of their own."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32")
    x = layers.Rescaling(1 / 255, offset=-0.5)(inputs)  # folded into the VALID conv by the converter
    a = layers.Conv2D(6, 3, strides=2, padding="valid")(x)  # 28 -> 13, no activation: negative values
    b = layers.MaxPooling2D(2, padding="same")(a)  # 13 -> 7, padded after only: the last windows hold one
    c = layers.Conv2D(6, 3, padding="same", activation="relu")(b)
    d = layers.ReLU()(layers.Add()([b, c]))  # ADD of two live tensors, RELU fused
    e = layers.Multiply()([d, b])  # MUL of two live tensors
    f = layers.GlobalAveragePooling2D(keepdims=True)(e)  # MEAN keep_dims: [N, 1, 1, 6]
    g = layers.GlobalAveragePooling2D()(layers.Conv2D(12, 1)(f))
    h = layers.Dense(16, activation="relu", use_bias=False)(g)  # FULLY_CONNECTED, RELU fused, bias omitted
    return keras.Model(inputs, layers.Dense(NUM_CLASSES)(h))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model converted once (3 s and 1 s here, after TensorFlow's 8 s import), as float32 .tflite."""
    tf = pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("ops")
    paths = {}
    for name, build in (("family", _family_model), ("options", _options_model), ("residual", _residual_model)):
        model = build()
        _randomize(model, rng)
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return paths


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (BATCH, *INPUT_SHAPE), dtype=np.uint8)


def _litert_scores(path: Path, pixels: np.ndarray) -> np.ndarray:
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT is the reference")
    interp = litert.Interpreter(model_path=str(path), num_threads=1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(pixels.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], pixels.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(out["index"]).copy()


def _ops(graph: Graph) -> list[str]:
    return [op.op for op in graph.operators]


# --- parity: every kept op against LiteRT ----------------------------------------------------------


@pytest.mark.parametrize("name", ["family", "options", "residual"])
def test_the_numpy_backend_matches_litert(models: dict[str, Path], name: str) -> None:
    pixels = _pixels()
    reference = _litert_scores(models[name], pixels)
    scores = NumpyBackend(models[name], threads=1).run(pixels)
    assert scores.shape == reference.shape == (BATCH, NUM_CLASSES)
    scale = float(np.abs(reference).max())
    assert scale > 0.1  # scores of a live model, not all zeros that any kernel would match
    assert float(np.abs(scores - reference).max()) <= RELATIVE_TOLERANCE * scale


def test_every_op_and_option_the_backend_runs_is_in_a_tested_model(models: dict[str, Path]) -> None:
    family, options = read_graph(models["family"]), read_graph(models["options"])
    # Our exporter's family, in order: normalization, conv+BN+ReLU and pools per stage, GAP, Dense.
    assert _ops(family) == ["MUL", "ADD", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                            "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    ops = [op for graph in (family, options) for op in graph.operators]
    assert {op.op for op in ops} == set(OPS.values())

    def seen(name: str, key: str) -> set[object]:
        return {op.options[key] for op in ops if op.op == name}

    for name in ("CONV_2D", "MAX_POOL_2D"):
        assert seen(name, "padding") == {"SAME", "VALID"}, name
    assert seen("CONV_2D", "stride_h") == seen("CONV_2D", "stride_w") == {1, 2}
    for name in ("CONV_2D", "FULLY_CONNECTED", "ADD"):
        assert seen(name, "activation") == {None, "RELU"}, name
    assert seen("MEAN", "keep_dims") == {False, True}
    # Binary ops: a constant operand (the normalization) and two live ones.
    graphs = [(graph, op) for graph in (family, options) for op in graph.operators if op.op in ("ADD", "MUL")]
    constants = {(op.op, sum(graph.tensors[t].data is not None for t in op.inputs)) for graph, op in graphs}
    assert constants == {("ADD", 0), ("ADD", 1), ("MUL", 0), ("MUL", 1)}
    # The odd VALID pool drops a row and a column (7 -> 3); the SAME one pads after only (13 -> 7).
    pools = [(graph, op) for graph in (family, options) for op in graph.operators if op.op == "MAX_POOL_2D"]
    assert [(graph.tensors[op.inputs[0]].shape[1], graph.tensors[op.outputs[0]].shape[1]) for graph, op in pools] \
        == [(28, 14), (14, 7), (7, 3), (13, 7)]
    # An omitted optional input (a Dense without bias) is -1, not a tensor.
    assert any(op.inputs[2:] == (-1,) for op in ops if op.op == "FULLY_CONNECTED")


# --- refusals: what was removed, and any other op, in one line --------------------------------------


def _rewritten(path: Path, out: Path, edit: Callable[[Any], None]) -> Path:
    """The model with `edit` applied to LiteRT's object form of it: a file a converter could write."""
    flatbuffers = pytest.importorskip("flatbuffers", reason="LiteRT's own dependency")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="LiteRT's schema writes the file")
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


def _refusal(path: Path) -> str:
    with pytest.raises(ModelError) as caught:
        NumpyBackend(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(path)), message
    return message


@pytest.mark.parametrize("removed", ["AVERAGE_POOL_2D", "RELU", "RELU6", "RESHAPE", "SOFTMAX"])
def test_a_removed_op_is_refused_in_one_line_naming_it(models: dict[str, Path], tmp_path: Path, removed: str) -> None:
    code = next(c for c, name in UNSUPPORTED.items() if name == removed)

    def edit(model: Any) -> None:  # the family model's MAX_POOL_2D (opcode 17) becomes the removed op
        entry = next(e for e in model.operatorCodes if e.builtinCode == 17)
        entry.builtinCode = entry.deprecatedBuiltinCode = code

    message = _refusal(_rewritten(models["family"], tmp_path / "removed.tflite", edit))
    assert message.endswith(f"operator 3 is {removed}, which the numpy backend does not run "
                            "(it runs ADD, CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, MEAN, MUL)")


def test_a_fused_relu6_is_refused_by_name(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(model: Any) -> None:
        model.subgraphs[0].operators[2].builtinOptions.fusedActivationFunction = 3  # RELU (1) -> RELU6 (3)

    message = _refusal(_rewritten(models["family"], tmp_path / "relu6.tflite", edit))
    assert message.endswith("operator 2 (CONV_2D) has fused activation RELU6; the numpy backend runs none and RELU")


def test_keep_num_dims_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(model: Any) -> None:
        model.subgraphs[0].operators[-1].builtinOptions.keepNumDims = True

    message = _refusal(_rewritten(models["family"], tmp_path / "keep.tflite", edit))
    assert message.endswith("operator 11 (FULLY_CONNECTED) has keep_num_dims set; the numpy backend flattens a "
                            "dense layer's input to [N, C]")
