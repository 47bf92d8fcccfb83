"""The numpy backend: it reads the shipped float .tflite by hand and must give LiteRT's answers.

What a user relies on: `--backend numpy` gives the same scores as LiteRT on the float model, it is
what classify and selftest use when no interpreter installs (the last row of runtime/registry.py,
so auto reaches it), it refuses what it cannot run in one line, and it never loads TensorFlow or
an interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.classifier import default_model_path
from fmnist_edge.runtime.errors import MissingExtraError, ModelError
from fmnist_edge.runtime.float_golden import NUMPY_PARITY
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import bundled_dir, entry_for
from fmnist_edge.runtime.numpy_backend import NumpyBackend
from fmnist_edge.runtime.tflite_reader import _Reader, read_graph

ARTIFACTS = bundled_dir()
FP32 = ARTIFACTS / by_name("tflite-fp32").filename
INT8 = ARTIFACTS / by_name("tflite-int8").filename
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "test_0000_ankle_boot.png"
INTERPRETERS = ("ai_edge_litert", "tflite_runtime", "onnxruntime")
HEAVY = ("tensorflow", "keras", *INTERPRETERS)


def fashion_test_set() -> tuple[np.ndarray, np.ndarray]:
    from fmnist_edge.common.errors import DataError
    from fmnist_edge.train import data

    try:
        ds = data.load(None)
    except DataError as exc:
        pytest.skip(f"needs Fashion-MNIST: {exc}")
    return ds.test_images, ds.test_labels


def litert_fp32_scores(images: np.ndarray) -> np.ndarray:
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT is the reference")
    interp = litert.Interpreter(model_path=str(FP32), num_threads=1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [500, 28, 28, 1])
    interp.allocate_tensors()
    scores = []
    for i in range(0, len(images), 500):
        interp.set_tensor(inp["index"], images[i : i + 500, ..., None].astype(np.float32))
        interp.invoke()
        scores.append(interp.get_tensor(out["index"]).copy())
    return np.concatenate(scores)


# --- parity: the contract of the issue --------------------------------------------------------------


@pytest.mark.slow
def test_numpy_matches_litert_fp32_on_the_full_test_set() -> None:
    images, labels = fashion_test_set()
    reference = litert_fp32_scores(images)
    backend = NumpyBackend(FP32, threads=1)  # one BLAS thread: 11 s here, where two contend with other work (27 s)
    scores = np.concatenate([backend.run(images[i : i + 500, ..., None]) for i in range(0, len(images), 500)])
    assert scores.dtype == np.float32 and scores.shape == (10_000, 10)
    assert float(np.abs(scores - reference).max()) <= 1e-4  # measured 3.3e-06
    assert np.array_equal(scores.argmax(1), reference.argmax(1))
    assert 0.93 < float((scores.argmax(1) == labels).mean()) < 0.95  # the manifest's 94.01%


def test_batch_size_does_not_change_the_scores() -> None:
    # run() splits big batches into chunks and one image is a batch of its own: same numbers either way.
    pixels = np.random.default_rng(0).integers(0, 256, (70, 28, 28, 1), dtype=np.uint8)
    backend = NumpyBackend(FP32, threads=1)
    whole = backend.run(pixels)
    one_by_one = np.concatenate([backend.run(pixels[i : i + 1]) for i in range(len(pixels))])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    assert backend.run(pixels[:0]).shape == (0, 10)


# --- the registry row: where auto finds it ----------------------------------------------------------


def test_numpy_is_the_last_registry_row_and_runs_float_tflite_only() -> None:
    assert registry.NAMES == ("litert", "tflite-runtime", "onnxruntime", "numpy")
    row = registry.row("numpy")
    assert (row.kind, row.precisions, row.opener) == ("tflite", ("fp32",),
                                                       "fmnist_edge.runtime.numpy_backend:NumpyBackend")
    assert row.runs("fp32") and not row.runs("int8")
    assert load_backend(FP32, threads=1, backend="numpy").name == "numpy"
    assert default_model_path("numpy") == FP32


def block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make these backends' modules fail to import in this process, as where no wheel installs."""
    for name in names:
        monkeypatch.setitem(sys.modules, registry.row(name).module, None)


def test_auto_takes_the_first_importing_row_and_the_bundled_model_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ai_edge_litert.interpreter", reason="the usual install's first choice")
    assert registry.auto().name == "litert" and default_model_path() == INT8
    block(monkeypatch, "litert", "tflite-runtime")
    if importlib.util.find_spec("onnxruntime") is not None:  # only onnxruntime: its int8 ONNX, not an exit 2
        assert registry.auto().name == "onnxruntime"
        assert default_model_path() == ARTIFACTS / by_name("onnx-int8").filename
    block(monkeypatch, "onnxruntime")
    assert registry.auto().name == "numpy" and registry.auto("onnx") is None
    assert default_model_path("auto") == FP32
    assert load_backend(FP32).name == "numpy"  # a float .tflite named by path falls back too
    with pytest.raises(MissingExtraError, match=r"ai-edge-litert is not installed.*pip install ai-edge-litert.*"
                                                r"numpy cannot stand in: .*float32 models only"):
        load_backend(INT8)
    with pytest.raises(MissingExtraError, match=r"^ai-edge-litert is not installed.*pip install ai-edge-litert"):
        load_backend(FP32, backend="litert")  # asked for by name: no stand-in


# --- the reader, checked against LiteRT's own generated schema code ---------------------------------


def test_the_reader_sees_what_litert_schema_code_sees() -> None:
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="LiteRT's schema is the reference")
    model = schema.Model.GetRootAs(FP32.read_bytes(), 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = read_graph(FP32)

    assert [op.op for op in graph.operators] == [
        names[model.OperatorCodes(sub.Operators(i).OpcodeIndex()).BuiltinCode()] for i in range(sub.OperatorsLength())
    ] == ["MUL", "ADD", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "CONV_2D", "CONV_2D",
          "MEAN", "FULLY_CONNECTED"]
    for i, op in enumerate(graph.operators):
        theirs = sub.Operators(i)
        assert list(op.inputs) == list(theirs.InputsAsNumpy()) and list(op.outputs) == list(theirs.OutputsAsNumpy())
        if op.op == "CONV_2D":
            o = schema.Conv2DOptions()
            o.Init(theirs.BuiltinOptions().Bytes, theirs.BuiltinOptions().Pos)
            assert (op.options["stride_h"], op.options["stride_w"]) == (o.StrideH(), o.StrideW()) == (1, 1)
            assert op.options["padding"] == "SAME" and o.Padding() == schema.Padding.SAME
            assert op.options["activation"] == "RELU" and o.FusedActivationFunction() == 1
        if op.op == "MAX_POOL_2D":
            o = schema.Pool2DOptions()
            o.Init(theirs.BuiltinOptions().Bytes, theirs.BuiltinOptions().Pos)
            assert (op.options["filter_h"], op.options["filter_w"]) == (o.FilterHeight(), o.FilterWidth()) == (2, 2)
            assert (op.options["stride_h"], op.options["padding"]) == (2, "VALID")
    for i, tensor in enumerate(graph.tensors):
        theirs = sub.Tensors(i)
        assert tensor.name == theirs.Name().decode()
        assert list(tensor.shape) == list(theirs.ShapeAsNumpy())
        data = model.Buffers(theirs.Buffer()).DataAsNumpy()
        if tensor.data is None:
            assert isinstance(data, int)  # no data: the generated code returns 0
        else:
            assert tensor.data.tobytes() == data.tobytes()
    assert list(graph.inputs) == [0] and list(graph.outputs) == [29]


# --- refusals: one clear line, never a wrong answer ------------------------------------------------


def patched(tmp_path: Path, edits: dict[int, bytes]) -> Path:
    data = bytearray(FP32.read_bytes())
    for pos, value in edits.items():
        data[pos : pos + len(value)] = value
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(data))
    return path


def test_an_int8_model_is_refused_with_the_float_model_named() -> None:
    for attempt in (lambda: NumpyBackend(INT8), lambda: load_backend(INT8, backend="numpy")):
        with pytest.raises(ModelError, match=r"float32 models only.*fmnist_cnn_fp32\.tflite"):
            attempt()


def test_an_op_it_does_not_run_is_refused_by_name(tmp_path: Path) -> None:
    # Turn the MEAN opcode (40) into DEPTHWISE_CONV_2D (4), in both of the schema's opcode fields.
    reader = _Reader(FP32.read_bytes())
    root = int(reader._unpack("I", 0))
    mean_code = reader.tables(root, 1)[4]
    edits = {reader.field_pos(mean_code, 3): (4).to_bytes(4, "little"), reader.field_pos(mean_code, 0): b"\x04"}
    with pytest.raises(ModelError, match=r"operator 10 is DEPTHWISE_CONV_2D, which the numpy backend does not run"):
        NumpyBackend(patched(tmp_path, edits))


def test_a_tensor_type_it_does_not_run_is_refused_by_name(tmp_path: Path) -> None:
    reader = _Reader(FP32.read_bytes())
    root = int(reader._unpack("I", 0))
    axes = reader.tables(reader.tables(root, 2)[0], 0)[15]  # the MEAN's int32 axes
    with pytest.raises(ModelError, match=r"tensor 15 \(fmnist_cnn_1/gap_1/Mean/reduction_indices\) is FLOAT16"):
        NumpyBackend(patched(tmp_path, {reader.field_pos(axes, 1): b"\x01"}))


@pytest.mark.parametrize("cut", [0.5, 0.02])
def test_a_truncated_or_foreign_file_is_a_model_error(tmp_path: Path, cut: float) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(FP32.read_bytes()[: int(FP32.stat().st_size * cut)])
    with pytest.raises(ModelError, match=r"broken\.tflite"):
        NumpyBackend(path)
    path.write_bytes(b"PK\x03\x04 not a flatbuffer at all")
    with pytest.raises(ModelError, match="not a TFLite model"):
        NumpyBackend(path)


# --- the command line -------------------------------------------------------------------------------


@pytest.mark.slow
def test_classify_selftest_and_bench_take_backend_numpy() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["classify", "--backend", "numpy", "--json", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert '"label": "Ankle boot"' in result.stdout

    result = runner.invoke(app, ["selftest", "--backend", "numpy"])
    assert result.exit_code == 0, result.output
    # The float rule's tolerance: the int8 and float models' distances from Keras, as export measured them.
    manifest = json.loads((bundled_dir() / "manifest.json").read_text())
    tolerance = NUMPY_PARITY + sum(entry_for(manifest, path.name)["max_abs_diff"] for path in (INT8, FP32))
    assert f"against the int8 golden scores, tolerance {tolerance:.3g})" in result.stdout

    result = runner.invoke(app, ["bench", str(FP32), str(INT8), "--budget", "0.01", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert {(r["file"], r["backend"]) for r in rows if r["backend"] == "numpy"} == {(FP32.name, "numpy")}
    assert f"numpy: runs fp32 models only; skipped {INT8.name}" in result.stderr

    # --backend keeps that one backend: the bundled models it can run, and no Keras baseline.
    result = runner.invoke(app, ["bench", "--backend", "numpy", "--budget", "0.01", "--json"])
    assert result.exit_code == 0, result.output
    assert {(r["file"], r["backend"]) for r in json.loads(result.stdout)["results"]} == {(FP32.name, "numpy")}


def test_a_backend_asked_for_but_not_installed_is_one_line_naming_the_install_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block(monkeypatch, "tflite-runtime")
    for args in (["classify", "--backend", "tflite-runtime", str(EXAMPLE)], ["selftest", "--backend", "tflite-runtime"],
                 ["bench", "--backend", "tflite-runtime", "--budget", "0.01"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.strip() == ("error: tflite-runtime is not installed; this command needs it: "
                                         'pip install "fmnist-edge[tflite-runtime]" '
                                         "(it needs numpy<2 and Python <= 3.11)"), args


def test_selftest_fails_on_numpy_when_the_scores_move_beyond_the_float_bound(tmp_path: Path) -> None:
    from fmnist_edge.runtime.golden import KEYS, default_path

    with np.load(default_path()) as data:
        fields = {k: data[k] for k in KEYS}
    fields["scores"] = fields["scores"].copy()
    fields["scores"][7, 3] += 2.0  # a numpy kernel off by this much is broken, not rounding
    golden = tmp_path / "golden.npz"
    np.savez(golden, **fields)
    result = CliRunner().invoke(app, ["selftest", "--backend", "numpy", "--golden", str(golden)])
    assert result.exit_code == 1
    assert "float scores differ from the golden scores by up to" in result.stderr


def test_backend_numpy_refuses_onnx_and_int8_in_one_line() -> None:
    onnx = ARTIFACTS / by_name("onnx-fp32").filename
    for model, message in ((onnx, "cannot run fmnist_cnn_fp32.onnx"), (INT8, "float32 models only")):
        result = CliRunner().invoke(app, ["classify", "--backend", "numpy", "--model", str(model), str(EXAMPLE)])
        assert result.exit_code == 2
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- processes: the fallback, and what the numpy backend imports ------------------------------------

# None in sys.modules: `import` raises ImportError and importlib.util.find_spec says "not installed".
BLOCK = "import sys\nsys.modules.update(dict.fromkeys({blocked!r}))"
HEAVY_LOADED = ("print('loaded:', sorted(m for m, mod in sys.modules.items() if mod is not None and m.split('.')[0] in "
                "{heavy!r}), file=sys.stderr)")


def run_blocked(args: list[str]) -> subprocess.CompletedProcess:
    """`fmnist-edge ARGS` in a process where no interpreter can be imported, as on a bare install."""
    code = "\n".join([
        BLOCK.format(blocked=INTERPRETERS),
        "from fmnist_edge.main import main",
        f"sys.argv = ['fmnist-edge', *{args!r}]",
        "try:\n    main()\nfinally:\n    " + HEAVY_LOADED.format(heavy=HEAVY),
    ])
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


@pytest.mark.slow
def test_with_no_interpreter_classify_and_selftest_fall_back_to_numpy_and_the_float_model() -> None:
    result = run_blocked(["classify", str(EXAMPLE)])
    assert result.returncode == 0, result.stderr
    assert "Ankle boot" in result.stdout
    assert "loaded: []" in result.stderr

    result = run_blocked(["selftest"])
    assert result.returncode == 0, result.stderr
    assert "selftest ok" in result.stdout and "float fmnist_cnn_fp32.tflite" in result.stdout
    assert "litert" not in result.stdout

    result = run_blocked(["doctor"])
    assert result.returncode == 0, result.stdout
    assert "doctor: ready (numpy + fmnist_cnn_fp32.tflite)" in result.stdout
    assert re.search(r"^  numpy +ok +\S+ +used: the first that imports, runs fmnist_cnn_fp32\.tflite", result.stdout,
                     re.MULTILINE)
    for name in ("litert", "tflite-runtime", "onnxruntime"):
        assert re.search(rf"^  {name} +missing +not installed \(", result.stdout, re.MULTILINE), name

    result = run_blocked(["bench", "--budget", "0.01", "--no-keras", "--json"])
    assert result.returncode == 0, result.stderr
    assert {(r["file"], r["backend"]) for r in json.loads(result.stdout)["results"]} == {(FP32.name, "numpy")}


def test_with_no_interpreter_an_int8_model_still_names_the_install() -> None:
    # numpy cannot run int8: the fallback must not hide what is missing.
    result = run_blocked(["classify", "--model", str(INT8), str(EXAMPLE)])
    assert result.returncode == 2
    error = result.stderr.splitlines()[0]
    assert error.startswith("error: ai-edge-litert is not installed; this command needs it: pip install ai-edge-litert")
    assert error.endswith("the numpy backend runs float32 models only (use the float model, fmnist_cnn_fp32.tflite)")


def test_the_numpy_backend_never_imports_tensorflow_or_an_interpreter() -> None:
    code = f"""
import sys
import numpy as np
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.classifier import Classifier
backend = load_backend({str(FP32)!r}, threads=1, backend="numpy")
backend.run(np.zeros((2, 28, 28, 1), dtype=np.uint8))
print(Classifier(backend="numpy").classify({str(EXAMPLE)!r})[0].label)
print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Ankle boot", "[]"]
