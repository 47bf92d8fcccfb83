"""The model contract, for every backend: one input [N, 28, 28, 1] of raw pixels, one output [N, 10].

A model that breaks it is refused at load with one line and exit 2; a model that answers NaN is
an error for each input it answers so, never an answer; interpreter failures are model errors;
--threads is bounded. Test models are tiny ONNX graphs built here, so no TensorFlow is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import garment, invoke

from fmnist_edge.runtime import registry
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.contract import check_io
from fmnist_edge.runtime.errors import ModelError, UsageError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import bundled_dir


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("INFO:")]


def onnx_model(path: Path, *, inputs: int = 1, out_shape: tuple = ("N", 10), in_type: str = "FLOAT",
               weight: float = 0.0) -> Path:
    """float [N, 28, 28, 1] -> GlobalAveragePool -> Flatten -> MatMul(w): scores [N, 10], all `weight`-driven.

    `inputs` adds unused extra inputs; `out_shape` reshapes the scores; `weight` NaN makes every score NaN.
    """
    onnx = pytest.importorskip("onnx", reason="needs onnx to build the test models")
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    from onnx import TensorProto, helper

    elem = getattr(TensorProto, in_type)
    nodes = []
    x = "x"
    if in_type != "FLOAT":
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    initializers = [helper.make_tensor("w", TensorProto.FLOAT, [28, 10], np.full(280, weight, np.float32))]
    out = "logits"
    if tuple(out_shape) != ("N", 10):
        shape = [0 if d == "N" else d for d in out_shape]  # 0 copies the batch axis
        initializers.append(helper.make_tensor("shape", TensorProto.INT64, [len(shape)], shape))
        nodes.append(helper.make_node("Reshape", ["logits", "shape"], ["reshaped"]))
        out = "reshaped"
    graph_inputs = [helper.make_tensor_value_info(f"x{i}" if i else "x", elem, ["N", 28, 28, 1]) for i in range(inputs)]
    graph = helper.make_graph(nodes, "contract_test", graph_inputs,
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(out_shape))],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# --- the load check -------------------------------------------------------------------------------

BROKEN_CONTRACTS = {
    "two-inputs": (dict(inputs=2), "2 inputs"),
    "output-N-1-10": (dict(out_shape=("N", 1, 10)), "output shape"),
    "output-N-28-10": (dict(out_shape=("N", 28, 10)), "output shape"),
    "float64-input": (dict(in_type="DOUBLE"), "input type"),
    "int8-input": (dict(in_type="INT8"), "input type"),
}


@pytest.mark.parametrize("case", BROKEN_CONTRACTS, ids=list(BROKEN_CONTRACTS))
def test_a_model_that_breaks_the_contract_is_refused_at_load_with_exit_2(case: str, tmp_path: Path) -> None:
    options, words = BROKEN_CONTRACTS[case]
    model = onnx_model(tmp_path / f"{case}.onnx", **options)
    result = invoke("classify", "--model", model, garment(tmp_path / "x.png"))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = lines(result.stderr)
    assert line.startswith("error: ") and words in line, line


@pytest.mark.parametrize(
    ("inputs", "outputs", "words"),
    [
        ([([-1, 28, 28, 1], "uint8")], [([-1, 10], "float32")], None),  # the int8 TFLite's own signature
        ([(["N", 28, 28, 1], "float32")], [(["N", 10], "float32")], None),
        ([([1, 28, 28, 1], "float32")], [([1, 10], "int8")], None),  # a fixed batch is resized at run time
        ([], [([-1, 10], "float32")], "0 inputs"),
        ([([-1, 28, 28, 1], "uint8")] * 2, [([-1, 10], "float32")], "2 inputs"),
        ([([-1, 28, 28, 1], "uint8")], [([-1, 10], "float32")] * 2, "2 outputs"),
        ([([-1, 28, 28], "uint8")], [([-1, 10], "float32")], "input shape"),
        ([([-1, 28, 28, 3], "uint8")], [([-1, 10], "float32")], "input shape"),
        ([([-1, "H", "W", 1], "uint8")], [([-1, 10], "float32")], "input shape"),
        ([([-1, 28, 28, 1], "float16")], [([-1, 10], "float32")], "input type"),
        ([([-1, 28, 28, 1], "uint8")], [([-1, 1, 10], "float32")], "output shape"),
        ([([-1, 28, 28, 1], "uint8")], [([-1, 12], "float32")], "output shape"),
        ([([-1, 28, 28, 1], "uint8")], [([-1], "float32")], "output shape"),
        ([([-1, 28, 28, 1], "uint8")], [([-1, 10], "float64")], "output type"),
    ],
)
def test_the_contract_check_every_backend_calls(inputs: list, outputs: list, words: str | None) -> None:
    # TFLite, ONNX and numpy backends all describe their tensors to this one function.
    if words is None:
        check_io(Path("m.tflite"), inputs, outputs)
        return
    with pytest.raises(ModelError, match=words):
        check_io(Path("m.tflite"), inputs, outputs)


# --- non-finite scores ------------------------------------------------------------------------------


def test_nan_scores_are_an_error_for_each_input_never_an_answer(tmp_path: Path) -> None:
    model = onnx_model(tmp_path / "nan.onnx", weight=float("nan"))
    images = [garment(tmp_path / "a.png"), garment(tmp_path / "b.png")]
    result = invoke("classify", "--json", "--model", model, *images)
    assert result.exit_code == 1, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]  # strict JSON: no NaN anywhere
    assert [o["path"] for o in objects] == [str(p) for p in images]
    assert all("error" in o and "non-finite" in o["error"] and "confidence" not in o for o in objects)
    assert "NaN" not in result.stdout.replace("(NaN or inf)", "")


def test_selftest_of_a_nan_model_fails(tmp_path: Path) -> None:
    result = invoke("selftest", "--model", onnx_model(tmp_path / "nan.onnx", weight=float("nan")))
    assert result.exit_code == 1, result.output
    assert "non-finite" in result.output


def test_the_library_refuses_to_turn_nan_into_a_prediction(tmp_path: Path) -> None:
    from fmnist_edge.runtime import Classifier

    classifier = Classifier(onnx_model(tmp_path / "nan.onnx", weight=float("nan")))
    with pytest.raises(ModelError, match="non-finite"):
        classifier.classify(garment(tmp_path / "a.png"))


# --- interpreter errors and threads ---------------------------------------------------------------


def test_an_interpreter_error_in_allocate_tensors_is_a_model_error_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = registry.auto("tflite")
    if row is None or row.name == "numpy":
        pytest.skip("needs a TFLite interpreter")
    import importlib

    interpreter = importlib.import_module(row.module).Interpreter

    def fail(self: object) -> None:
        raise RuntimeError("tensorflow/lite/kernels/conv.cc:351 bad allocation\nmore C++ context")

    monkeypatch.setattr(interpreter, "allocate_tensors", fail)
    model = bundled_dir() / by_name("tflite-int8").filename
    result = invoke("classify", "--model", model, "--backend", row.name, garment(tmp_path / "x.png"))
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert "cannot prepare the model" in line and "bad allocation" in line and "context" not in line, line


@pytest.mark.parametrize("threads", ["0", "257", "50000", "2147483648", "-1"])
@pytest.mark.parametrize("command", ["classify", "selftest", "evaluate-photos"])
def test_threads_out_of_range_is_a_usage_error(command: str, threads: str, tmp_path: Path) -> None:
    args = [command, "--threads", threads]
    args += [str(garment(tmp_path / "x.png"))] if command == "classify" else []
    args += [str(tmp_path)] if command == "evaluate-photos" else []
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("threads", [0, 257, 50_000, 2**31, True])
def test_the_library_refuses_threads_out_of_range_before_any_interpreter_sees_them(threads: int) -> None:
    with pytest.raises(UsageError, match="--threads"):
        load_backend(bundled_dir() / by_name("tflite-int8").filename, threads=threads)
