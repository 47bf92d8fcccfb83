"""Export: the committed artifacts mean what the Keras model meant, and export itself is safe.

The parity checks on the committed models use only the runtime's interpreters and the Keras
scores stored at export time, so they need no TensorFlow and run in seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fmnist_edge.common.keras_model import TRAINING_RECORD
from fmnist_edge.export import parity
from fmnist_edge.runtime.backends import load_backend, run_batched
from fmnist_edge.runtime.formats import EXPORTED
from fmnist_edge.runtime.manifest import bundled_dir, load_manifest, sha256_file
from fmnist_edge.runtime.model_info import read_metadata
from fmnist_edge.runtime.spec import CLASS_NAMES, PREPROCESS_VERSION
from fmnist_edge.train import data

# The committed artifacts in the checkout (the reference logits are not shipped in the wheel);
# test_runtime covers the copies installed with the package.
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
MANIFEST = load_manifest(ARTIFACTS)

SHIPPING_BAR = 0.940  # the project's bar for every shipped model, float and int8 (issue 11)


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    ds = data.load()
    return ds.test_images[..., None], ds.test_labels


@pytest.fixture(scope="module")
def keras_reference() -> np.ndarray:
    ref = MANIFEST["reference_logits"]
    path = ARTIFACTS / ref["file"]
    assert sha256_file(path) == ref["sha256"]
    return np.load(path)["logits"]


def scores_of(path: Path, images: np.ndarray) -> np.ndarray:
    return run_batched(load_backend(path).run, images, 1000)


def test_installed_models_are_the_committed_ones() -> None:
    installed = load_manifest(bundled_dir())
    assert installed == MANIFEST
    for entry in installed["models"]:
        assert sha256_file(bundled_dir() / entry["file"]) == entry["sha256"]


def test_manifest_lists_all_four_exported_models() -> None:
    assert sorted(m["file"] for m in MANIFEST["models"]) == sorted(f.filename for f in EXPORTED)
    assert MANIFEST["labels"] == list(CLASS_NAMES)
    assert (ARTIFACTS / MANIFEST["default_model"]).is_file()


@pytest.mark.parametrize("entry", MANIFEST["models"], ids=lambda m: m["name"])
def test_manifest_hashes_and_sizes_match_the_files(entry: dict) -> None:
    path = ARTIFACTS / entry["file"]
    assert path.stat().st_size == entry["size_bytes"]
    assert sha256_file(path) == entry["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", MANIFEST["models"], ids=lambda m: m["name"])
def test_committed_model_keeps_parity_on_the_full_test_set(entry: dict, test_set, keras_reference) -> None:
    images, labels = test_set
    tolerance = parity.INT8 if entry["precision"] == "int8" else parity.FLOAT
    report = parity.compare(entry["name"], scores_of(ARTIFACTS / entry["file"], images), keras_reference, labels,
                            tolerance)
    assert report.passed, report.summary()
    # The manifest's figures are what this machine measures now.
    assert report.accuracy == pytest.approx(entry["test_accuracy"], abs=2e-4)
    assert len(labels) == 10_000
    assert report.accuracy >= SHIPPING_BAR, f"{entry['name']} scores {report.accuracy:.4f} on the test set"


@pytest.mark.slow
def test_unsure_threshold_is_calibrated_on_classifys_own_probabilities() -> None:
    # classify flags answers by its mirror-averaged confidence; a threshold calibrated on anything
    # else would flag a different share of answers than the manifest says. Both halves are
    # recomputed: the dataset's from the training record's validation split, the photos' from the
    # validation photos' inputs that export stored beside the models.
    from fmnist_edge.export.calibrate import combined, photo_unsure_threshold, unsure_threshold
    from fmnist_edge.runtime.classifier import mirror_averaged
    from fmnist_edge.train.record import read_record
    from fmnist_edge.train.split import split

    ds = data.load()
    _, (val_x, val_y) = split(ds.train_images, ds.train_labels, read_record(ARTIFACTS / TRAINING_RECORD).config)
    backend = load_backend(ARTIFACTS / MANIFEST["default_model"])
    on_dataset = unsure_threshold(mirror_averaged(backend.run, val_x[..., None], 500), val_y)
    on_photos = None
    if MANIFEST.get("photo_val_inputs"):
        stored = ARTIFACTS / MANIFEST["photo_val_inputs"]["file"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == MANIFEST["photo_val_inputs"]["sha256"]
        photos = np.load(stored)
        on_photos = photo_unsure_threshold(mirror_averaged(backend.run, photos["images"][..., None], 500),
                                           photos["labels"])
        assert on_photos["accuracy_not_flagged"] >= 0.90  # the bar: answers not flagged unsure
    calibration = combined(on_dataset, on_photos)
    assert calibration == MANIFEST["unsure_calibration"]
    assert MANIFEST["unsure_threshold"] == calibration["threshold"]
    default_entry = next(m for m in MANIFEST["models"] if m["file"] == MANIFEST["default_model"])
    assert default_entry["unsure_calibration"] == calibration  # the folder's threshold is the default model's own


def test_photo_threshold_flags_as_few_as_the_target_allows() -> None:
    from fmnist_edge.export.calibrate import photo_unsure_threshold

    # Ten answers, most confident first: right, right, right, wrong, right, wrong, ...
    confidence = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)
    probabilities = np.zeros((10, 10))
    probabilities[np.arange(10), 0] = confidence
    probabilities[np.arange(10), 1] = (1 - confidence) / 2
    labels = np.where(correct, 0, 1)
    result = photo_unsure_threshold(probabilities, labels, target=0.8)
    # The top 5 are 4/5 = 80% right; the top 6 only 4/6. So the threshold is the 5th confidence.
    assert result["threshold"] == 0.75
    assert result["accuracy_not_flagged"] == 0.8 and result["flagged_fraction"] == 0.5


@pytest.mark.parametrize("entry", MANIFEST["models"], ids=lambda m: m["name"])
def test_models_carry_labels_and_input_contract(entry: dict) -> None:
    meta = read_metadata(ARTIFACTS / entry["file"])
    assert meta["labels"] == list(CLASS_NAMES)
    assert meta["preprocess_version"] == PREPROCESS_VERSION
    assert meta["input"]["shape"] == [None, 28, 28, 1]
    assert meta["precision"] == entry["precision"]
    assert meta["unsure_threshold"] == entry["unsure_threshold"] is not None  # travels with the file


@pytest.mark.parametrize("name", ["fmnist_cnn_fp32.onnx", "fmnist_cnn_int8.onnx"])
def test_onnx_files_pass_the_full_checker(name: str) -> None:
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(str(ARTIFACTS / name), full_check=True)


def test_int8_tflite_takes_raw_uint8_pixels() -> None:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(ARTIFACTS / "fmnist_cnn_int8.tflite"))
    detail = interp.get_input_details()[0]
    assert detail["dtype"] == np.uint8
    assert list(detail["shape_signature"]) == [-1, 28, 28, 1]  # dynamic batch


def test_parity_rejects_a_disagreeing_model(test_set, keras_reference) -> None:
    _, labels = test_set
    broken = keras_reference.copy()
    broken[:200] = broken[:200, ::-1]  # scramble 2% of the answers
    report = parity.compare("broken", broken, keras_reference, labels, parity.INT8)
    assert not report.passed
    with pytest.raises(parity.ParityError):
        parity.require(report)
    nudged = keras_reference + 2e-3
    assert not parity.compare("nudged", nudged, keras_reference, labels, parity.FLOAT).passed


# --- end to end: a tiny model trained in this session, exported with --int8 --------------------

TINY = {"fp32_tolerance": parity.Tolerance(1e-3, 1.0, None), "int8_tolerance": parity.Tolerance(None, 0.9, 5.0)}


@pytest.fixture(scope="module")
def smoke_export(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from fmnist_edge.export.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("smoke-export")
    options = ExportOptions(int8=True, calibration_size=100, **TINY)
    manifest = export(smoke_run / "fmnist_cnn.keras", out, options, log=lambda _: None)
    return out, manifest


def test_smoke_export_writes_four_models_whose_manifest_figures_are_their_own(smoke_export, test_set) -> None:
    from fmnist_edge.runtime import Classifier

    out, manifest = smoke_export
    models = sorted(p.name for p in out.iterdir() if p.suffix in (".tflite", ".onnx"))
    assert models == sorted(f.filename for f in EXPORTED)
    images, labels = test_set
    for entry in manifest["models"]:
        # The runtime accepts each file (its SHA-256 is the manifest's) and scores what export recorded
        # (batch 500, as export scored it, so float kernels see the same batches).
        classifier = Classifier(out / entry["file"])
        accuracy = float((run_batched(classifier.backend.run, images, 500).argmax(1) == labels).mean())
        assert accuracy == pytest.approx(entry["test_accuracy"], abs=1e-6), entry["file"]
        assert read_metadata(out / entry["file"])["unsure_threshold"] == entry["unsure_threshold"] is not None
    assert {m["file"] for m in manifest["models"]} == {f.filename for f in EXPORTED}
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest


def test_smoke_export_leaves_only_its_files_and_its_lock(smoke_export) -> None:
    # Staging lived inside --out and is gone; no content-addressed copy or temporary file is left.
    from fmnist_edge.common.lock import LOCK_FILE

    out, manifest = smoke_export
    listed = {m["file"] for m in manifest["models"]} | {manifest[k]["file"] for k in ("golden", "reference_logits")}
    assert sorted(p.name for p in out.iterdir()) == sorted(listed | {"manifest.json", LOCK_FILE})


def test_smoke_export_writes_golden_data_for_selftest(smoke_export) -> None:
    from fmnist_edge.runtime.selftest import run_selftest

    out, manifest = smoke_export
    assert manifest["golden"] == {"file": "golden.npz", "sha256": sha256_file(out / "golden.npz"), "images": 100}
    result = run_selftest(out / "fmnist_cnn_int8.tflite", out / "golden.npz")
    assert result.ok and result.same_model, result.summary()


def test_the_export_command_writes_a_parity_checked_model_then_refuses_to_replace_it(
    smoke_run: Path, tmp_path: Path
) -> None:
    # One float format keeps this fast; the CLI's parity tolerances are the shipped ones (no TINY).
    from typer.testing import CliRunner

    from fmnist_edge.app import app

    args = ["export", str(smoke_run / "fmnist_cnn.keras"), "--formats", "tflite", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[1/4] loading ") and "tflite-fp32" in result.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["file"] for m in manifest["models"]] == ["fmnist_cnn_fp32.tflite"]
    assert sha256_file(tmp_path / "fmnist_cnn_fp32.tflite") == manifest["models"][0]["sha256"]
    assert manifest["default_model"] is None  # no int8 TFLite was made, so classify needs --model
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert again.stderr.strip().endswith("already exist; pass --force to replace them")


def test_export_refuses_to_overwrite_without_force(smoke_run: Path, smoke_export) -> None:
    from fmnist_edge.common.errors import ExportError
    from fmnist_edge.export.pipeline import ExportOptions, export

    out, _ = smoke_export
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ExportError, match="--force"):
        export(smoke_run / "fmnist_cnn.keras", out, ExportOptions(int8=True, **TINY), log=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_failed_parity_leaves_previous_artifacts_intact(smoke_run: Path, smoke_export) -> None:
    from fmnist_edge.common.errors import ParityError
    from fmnist_edge.export.pipeline import ExportOptions, export

    out, _ = smoke_export
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    impossible = parity.Tolerance(0.0, 1.0, None)  # no float conversion is bit-exact
    options = ExportOptions(kinds=("onnx",), force=True, fp32_tolerance=impossible)
    with pytest.raises(ParityError):
        export(smoke_run / "fmnist_cnn.keras", out, options, log=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --- the manifest after a partial re-export ------------------------------------------------------


def previous_export(out: Path, source_sha256: str) -> None:
    """An earlier int8 export in `out`: the shipped int8 TFLite, its golden data and a manifest for them."""
    import shutil

    reference = MANIFEST["reference_logits"]["file"]
    for name in ("fmnist_cnn_int8.tflite", "fmnist_cnn_fp32.tflite", "golden.npz", reference):
        shutil.copy(ARTIFACTS / name, out / name)
    previous = {**MANIFEST, "source": {**MANIFEST["source"], "sha256": source_sha256}}
    previous["models"] = [m for m in MANIFEST["models"] if m["file"] == "fmnist_cnn_int8.tflite"]
    (out / "manifest.json").write_text(json.dumps(previous))


@pytest.mark.parametrize("same_source", [True, False], ids=["same-keras-model", "new-keras-model"])
def test_a_float_only_reexport_keeps_int8_derived_entries_only_for_the_same_model(
    same_source: bool, tmp_path: Path
) -> None:
    from fmnist_edge.export.manifest import build_manifest
    from fmnist_edge.export.pipeline import ExportOptions
    from fmnist_edge.runtime import Classifier, ModelError

    keras_file = tmp_path / "fmnist_cnn.keras"
    keras_file.write_bytes(b"stands in for the Keras model; only its hash matters here")
    previous_export(tmp_path, sha256_file(keras_file) if same_source else "0" * 64)
    fp32 = next(m for m in MANIFEST["models"] if m["file"] == "fmnist_cnn_fp32.tflite")

    manifest = build_manifest(tmp_path, tmp_path, keras_file, 0.94, [fp32], ExportOptions(), data_sha256={})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    listed = {m["file"] for m in manifest["models"]}
    if same_source:  # the int8 model and what was derived from it still belong to this Keras model
        assert listed == {"fmnist_cnn_fp32.tflite", "fmnist_cnn_int8.tflite"}
        assert manifest["default_model"] == "fmnist_cnn_int8.tflite"
        assert manifest["unsure_threshold"] == MANIFEST["unsure_threshold"]
        assert manifest["golden"]["sha256"] == sha256_file(tmp_path / "golden.npz")
        Classifier(tmp_path / "fmnist_cnn_int8.tflite")
    else:  # the old int8 file is a leftover: not listed, not the default, and refused if named
        assert listed == {"fmnist_cnn_fp32.tflite"}
        assert manifest["default_model"] is None
        assert manifest["unsure_threshold"] is None and manifest["golden"] is None
        with pytest.raises(ModelError, match="not listed"):
            Classifier(tmp_path / "fmnist_cnn_int8.tflite")
