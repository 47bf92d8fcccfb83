"""bfloat16 training: what `--precision auto` picks, and that whatever a run trains in, every model
it writes for export, evaluate and the device computes in float32."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import BFLOAT16_RUNS
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.train.precision import bfloat16_warning, native_bf16, resolve_precision

needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="needs the [train] extra")
EPYC_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 sha_ni\n"
OLDER_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni sha_ni\n"


@pytest.mark.parametrize(("machine", "flags", "expected"), [
    ("x86_64", EPYC_FLAGS, "bfloat16"),
    ("x86_64", "flags\t\t: fpu avx512f amx_bf16 amx_tile\n", "bfloat16"),  # Sapphire Rapids' AMX
    ("x86_64", OLDER_FLAGS, "float32"),  # bfloat16 would be emulated, slower than float32
    ("aarch64", "Features\t: fp asimd bf16\n", "float32"),  # not a kernel TensorFlow's x86 oneDNN path uses
    ("x86_64", "", "float32"),
])
def test_auto_is_bfloat16_only_where_the_cpu_computes_it_natively(tmp_path: Path, monkeypatch, machine: str,
                                                                    flags: str, expected: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\n" + flags)
    monkeypatch.setattr("platform.machine", lambda: machine)
    assert resolve_precision("auto", cpuinfo) == expected
    assert resolve_precision("float32", cpuinfo) == "float32" and resolve_precision("bfloat16", cpuinfo) == "bfloat16"


def test_bfloat16_asked_for_where_it_is_emulated_warns_and_where_it_cannot_run_is_refused(
        tmp_path: Path, monkeypatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    cpuinfo.write_text(EPYC_FLAGS)
    assert bfloat16_warning(cpuinfo) is None
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n")
    assert "emulates it, about 2.5x slower" in bfloat16_warning(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    with pytest.raises(ValueError, match="cannot train in it here; use --precision float32 or auto"):
        bfloat16_warning(cpuinfo)


def test_a_machine_without_proc_cpuinfo_trains_in_float32(tmp_path: Path) -> None:
    assert not native_bf16(tmp_path / "absent")  # macOS, Windows


def test_an_unknown_precision_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--precision", "float16", "--out", str(tmp_path)])
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # typer's error box wraps the line
    assert "Invalid value for '--precision': 'float16' is not one of auto, float32, bfloat16" in said


@needs_tensorflow
def test_a_network_moves_between_precisions_with_its_weights_unchanged() -> None:
    import keras

    from fmnist_edge.common.keras_model import in_precision
    from fmnist_edge.train.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model()
    mixed = in_precision(model, "bfloat16")
    computes = {layer.name: layer.compute_dtype for layer in mixed.layers}
    assert computes["s0_conv0"] == computes["s2_bn2"] == "bfloat16"
    assert computes["normalize"] == computes["logits"] == "float32"  # the logits and the loss keep float32
    assert all(v.dtype == "float32" for v in mixed.weights)  # variables stay float32 under mixed precision
    back = in_precision(mixed, "float32")
    assert all(layer.compute_dtype == "float32" for layer in back.layers)
    for a, b in zip(model.get_weights(), back.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert in_precision(model, "float32") is model  # nothing to rebuild
    pixels = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype("float32")
    exact = np.asarray(model(pixels, training=False))
    rounded = np.asarray(mixed(pixels, training=False))
    assert rounded.dtype == np.float32
    assert np.abs(rounded - exact).max() < 0.05 * np.abs(exact).max()  # bfloat16 keeps ~3 significant digits
    assert np.array_equal(np.asarray(back(pixels, training=False)), exact)


def _layer_dtypes(keras_file: Path) -> set[str]:
    config = json.loads(zipfile.ZipFile(keras_file).read("config.json"))
    names = set()
    for layer in config["config"]["layers"]:
        dtype = layer["config"].get("dtype")
        names.add(dtype["config"]["name"] if isinstance(dtype, dict) else dtype)
    return names


@pytest.mark.slow
@needs_tensorflow
def test_a_bfloat16_run_writes_a_float32_model_and_records_its_precision(tmp_path: Path, monkeypatch) -> None:
    from fmnist_edge.common.keras_model import load_keras_model
    from fmnist_edge.train import loop

    finish_epoch = loop.Recorder.on_epoch_end
    checkpoints = []

    def look_at_the_checkpoint(self, epoch, logs=None):
        finish_epoch(self, epoch, logs)
        checkpoints.append(_layer_dtypes(self.model_path))
        # what export and evaluate load from a run stopped here computes in float32
        assert all(layer.compute_dtype == "float32" for layer in load_keras_model(self.model_path).layers)

    monkeypatch.setattr(loop.Recorder, "on_epoch_end", look_at_the_checkpoint)
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--no-photos", "--precision",
                                      "bfloat16", "--out", str(tmp_path)])
    if not BFLOAT16_RUNS:  # an x86 CPU without AVX-512: one line instead of TensorFlow's failure
        assert result.exit_code == 2 and "use --precision float32 or auto" in result.stderr
        return
    assert result.exit_code == 0, result.output
    assert "mixed_bfloat16" in checkpoints[0]  # mid-run, the checkpoint resumes in the precision it trained in
    assert _layer_dtypes(tmp_path / "fmnist_cnn.keras") == {"float32"}  # the finished run's model
    record = json.loads((tmp_path / "fmnist_cnn.training.json").read_text())
    assert record["config"]["precision"] == "bfloat16" and record["status"] == "completed"
