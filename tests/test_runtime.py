"""The on-device runtime as a library: `Classifier` and `preprocess`, on numpy, Pillow and one interpreter.

The bundled models are replaced whenever a new model is exported, so these tests check behaviour
(which file loads, shapes, probabilities, pixels) and never a label or an accuracy.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_edge.common.errors import DataError
from fmnist_edge.runtime import CLASS_NAMES, Classifier, ImageError, ModelError, Prediction, registry
from fmnist_edge.runtime.errors import MissingExtraError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import bundled_dir, load_manifest
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.train import data

ARTIFACTS = bundled_dir()
MANIFEST = load_manifest(ARTIFACTS)
PHOTOS = Path(__file__).resolve().parent / "data" / "photos"  # the 36 CC0 test photos (CREDITS.md)
PHOTO = "0_tshirt_top_08.jpg"
HEAVY = ("tensorflow", "keras", "tf_keras", "tf2onnx")  # what a device must never need


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real photo (shot on a floor, not a studio backdrop), copied so no test can touch the original."""
    return Path(shutil.copy(PHOTOS / PHOTO, tmp_path / PHOTO))


@pytest.fixture(scope="module")
def test_images() -> np.ndarray:
    try:
        return data.load(download=False).test_images
    except DataError:
        pytest.skip("needs Fashion-MNIST: apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def save_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def assert_is_the_models_answer(classifier: Classifier, prediction: Prediction, image: Path) -> None:
    """`prediction` is what the README says classify answers, recomputed here from the model's raw
    scores: the mean of the softmax of the image's and its mirror image's scores, flagged unsure
    below the threshold calibrated for this model (its metadata, as its manifest entry), never a guessed one."""
    pixels = preprocess(image)[None, ..., None]
    raw = classifier.backend.run(np.ascontiguousarray(np.concatenate([pixels, pixels[:, :, ::-1]]))).astype(np.float64)
    softmax = np.exp(raw - raw.max(1, keepdims=True))
    expected = (softmax / softmax.sum(1, keepdims=True)).mean(0)
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)
    assert prediction.label == CLASS_NAMES[int(expected.argmax())]
    own = next(m for m in MANIFEST["models"] if m["file"] == classifier.path.name)["unsure_threshold"]
    assert classifier.unsure_threshold == own is not None  # the model's own threshold
    assert prediction.unsure == (expected.max() < own)


# --- the public API ----------------------------------------------------------------------------


def test_every_public_name_is_the_object_its_module_defines() -> None:
    # The names load lazily; a submodule with the same name as an export would silently replace it
    # as soon as anything imports that submodule (it did: `preprocess` came back as a module).
    import importlib

    import fmnist_edge.runtime as runtime

    for name in runtime.__all__:
        module = importlib.import_module(runtime._EXPORTS[name])  # imports every submodule first
        assert getattr(runtime, name) is getattr(module, name), name


# --- the default model -------------------------------------------------------------------------


def test_default_classifier_loads_the_bundled_int8_tflite_from_the_installed_package(classifier: Classifier) -> None:
    # The manifest names the default, so shipping a new model never needs a code change.
    assert classifier.path == ARTIFACTS / MANIFEST["default_model"]
    assert classifier.path.suffix == ".tflite"
    assert classifier.path.name == by_name("tflite-int8").filename
    assert classifier.backend.name in {r.name for r in registry.for_kind("tflite")}


def test_classifies_a_dataset_image_and_a_real_photo(
    classifier: Classifier, test_images: np.ndarray, photo: Path, tmp_path: Path
) -> None:
    dataset_png = save_png(test_images[0], tmp_path / "test0.png")
    predictions = classifier.classify([dataset_png, photo])
    assert len(predictions) == 2
    for prediction, image in zip(predictions, [dataset_png, photo], strict=True):
        assert_is_the_models_answer(classifier, prediction, image)


def test_a_single_image_bytes_and_a_file_object_give_the_same_result_as_a_path(
    classifier: Classifier, photo: Path
) -> None:
    # A web handler or camera loop holds bytes or a stream, not a path.
    (by_path,) = classifier.classify(photo)
    (by_bytes,) = classifier.classify(photo.read_bytes())
    with photo.open("rb") as stream:
        (by_stream,) = classifier.classify(stream)
    np.testing.assert_array_equal(by_bytes.probabilities, by_path.probabilities)
    np.testing.assert_array_equal(by_stream.probabilities, by_path.probabilities)


def test_an_empty_list_classifies_to_an_empty_list(classifier: Classifier) -> None:
    # A folder scan that found nothing is not an error for the library; the CLI reports it.
    assert classifier.classify([]) == []


def test_predict_takes_prepared_pixels_with_or_without_the_channel_axis(
    classifier: Classifier, test_images: np.ndarray
) -> None:
    batch = test_images[:5]
    probabilities = classifier.predict(batch)
    assert probabilities.shape == (5, len(CLASS_NAMES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(classifier.predict(batch[..., None]), probabilities)
    # Batching is an implementation detail: splitting the batch must not change any answer.
    np.testing.assert_allclose(classifier.predict(batch, batch_size=2), probabilities, atol=1e-6)


@pytest.mark.slow
def test_a_mirror_image_gets_the_same_answer(classifier: Classifier, test_images: np.ndarray) -> None:
    # A shoe pointing left is the same shoe pointing right, so classify must answer both alike.
    batch = test_images[:2000]
    mirrored = np.ascontiguousarray(batch[:, :, ::-1])
    raw = classifier.backend.run(batch[..., None]).argmax(1)
    raw_mirrored = classifier.backend.run(mirrored[..., None]).argmax(1)
    assert (raw != raw_mirrored).any(), "the raw model is symmetric on these images: nothing to check"
    np.testing.assert_allclose(classifier.predict(mirrored), classifier.predict(batch), atol=1e-6)


def test_the_readmes_python_api_example_runs() -> None:
    # The first code a library user copies; it must not rot as the API changes.
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, "-c", block], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(any(line.startswith(f"{name} ") for name in CLASS_NAMES) for line in lines)


def test_predict_refuses_pixels_of_the_wrong_size(classifier: Classifier) -> None:
    with pytest.raises(ModelError, match=r"\[N, 28, 28\]"):
        classifier.predict(np.zeros((1, 32, 32), np.uint8))


def test_predict_refuses_float_pixels_instead_of_casting_them(classifier: Classifier, test_images: np.ndarray) -> None:
    # Pixels scaled to 0..1 would cast to an all-black batch and still get confident answers.
    with pytest.raises(ModelError, match=r"uint8 pixels 0\.\.255"):
        classifier.predict(test_images[:2] / 255.0)
    with pytest.raises(ModelError, match=r"uint8 pixels 0\.\.255"):
        classifier.predict(test_images[:2].astype(np.int16) - 1)
    wide = test_images[:2].astype(np.int64)  # integers within 0..255 are fine
    np.testing.assert_array_equal(classifier.predict(wide), classifier.predict(test_images[:2]))


def test_classify_takes_a_tuple_like_a_list(classifier: Classifier, photo: Path) -> None:
    by_tuple = classifier.classify((photo, photo))
    by_list = classifier.classify([photo, photo])
    assert len(by_tuple) == 2
    np.testing.assert_array_equal(by_tuple[0].probabilities, by_list[0].probabilities)


def test_backend_auto_means_by_file_type() -> None:
    assert Classifier(backend="auto").backend.name in {r.name for r in registry.for_kind("tflite")}


class FakeBackend:
    """A stand-in for a backend added later (say the pure-numpy interpreter): one registry row."""

    def __init__(self, path: Path, threads: int | None, row: registry.Row) -> None:
        self.name, self.path = row.name, path

    def run(self, pixels: np.ndarray) -> np.ndarray:
        return np.zeros((len(pixels), len(CLASS_NAMES)), dtype=np.float32)


def test_a_backend_is_one_registry_row_and_auto_takes_the_first_installed_of_the_files_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fmnist_edge.runtime.backends import load_backend

    model = ARTIFACTS / by_name("tflite-int8").filename
    absent = registry.Row("absent", "no_such_module_anywhere", "absent", "tflite", f"{__name__}:FakeBackend", "-")
    fake = registry.Row("fake", "numpy", "numpy", "tflite", f"{__name__}:FakeBackend", "-")
    real = registry.row("litert")
    monkeypatch.setattr(registry, "BACKENDS", (absent, fake, real))
    assert load_backend(model).name == "fake"  # the first row that imports wins; "absent" is skipped
    assert load_backend(model, backend="litert").name == "litert"  # a name picks its row
    monkeypatch.setattr(registry, "BACKENDS", (absent,))
    with pytest.raises(MissingExtraError, match="absent is not installed"):
        load_backend(model)


def test_an_unreadable_image_raises_image_error_naming_it(classifier: Classifier, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    with pytest.raises(ImageError, match=r"notes\.png"):
        classifier.classify(text)


# --- other backends and formats ----------------------------------------------------------------


def test_onnxruntime_backend_runs_the_bundled_int8_onnx(photo: Path) -> None:
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    classifier = Classifier(backend="onnxruntime")
    assert classifier.path == ARTIFACTS / by_name("onnx-int8").filename
    assert classifier.backend.name == "onnxruntime"
    (prediction,) = classifier.classify(photo)
    assert_is_the_models_answer(classifier, prediction, photo)


@pytest.mark.parametrize("entry", MANIFEST["models"], ids=lambda entry: entry["file"])
def test_every_shipped_model_can_be_named_explicitly(entry: dict, photo: Path) -> None:
    # Each model in the manifest, passed by path as the README's --model does; its hash is checked.
    if entry["format"] == "onnx":
        pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    classifier = Classifier(ARTIFACTS / entry["file"])
    (prediction,) = classifier.classify(photo)
    assert_is_the_models_answer(classifier, prediction, photo)


# --- the runtime never needs TensorFlow --------------------------------------------------------

WALK_SCRIPT = """
import importlib, json, pkgutil, sys
import fmnist_edge, fmnist_edge.runtime

def loaded(prefixes):
    return sorted(m for m in sys.modules if m == prefixes or m.split(".")[0] in prefixes or m.startswith(prefixes))

heavy, stages = tuple(sys.argv[2].split(",")), tuple(sys.argv[3].split(","))
runtime = [m.name for m in pkgutil.iter_modules(fmnist_edge.runtime.__path__, "fmnist_edge.runtime.")]
for name in runtime:
    importlib.import_module(name)
after_runtime = loaded(heavy + stages)
cli = [m.name for m in pkgutil.iter_modules(fmnist_edge.__path__, "fmnist_edge.")
       if not m.ispkg and m.name != "fmnist_edge.__main__"]
for name in cli:
    importlib.import_module(name)
# Run the device's commands too, so that imports inside functions happen as well.
from fmnist_edge.classify import classify_exit_code
from fmnist_edge.runtime.doctor import run_doctor
from fmnist_edge.runtime.selftest import run_selftest
assert classify_exit_code([sys.argv[1]], json_lines=True, top_k=3) == 0
assert run_selftest().ok
assert run_doctor().ready
print(json.dumps({"runtime": runtime, "cli": cli, "after_runtime": after_runtime, "at_end": loaded(heavy)}))
"""
TRAINING_STAGES = ("fmnist_edge.train", "fmnist_edge.export", "fmnist_edge.common")


def test_no_runtime_or_cli_module_imports_tensorflow_and_the_runtime_needs_no_other_stage(
    photo: Path, tmp_path: Path
) -> None:
    # A fresh interpreter: in this pytest process other test files import TensorFlow themselves.
    # Every module is found by walking the packages, so a module added later is covered too.
    result = subprocess.run(
        [sys.executable, "-c", WALK_SCRIPT, str(photo), ",".join(HEAVY), ",".join(TRAINING_STAGES)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert "fmnist_edge.runtime.backends" in report["runtime"] and "fmnist_edge.app" in report["cli"]
    assert report["after_runtime"] == [], "the runtime imported these"
    assert report["at_end"] == [], "the runtime or the CLI imported these"


# --- preprocessing: the pixel contract ---------------------------------------------------------


def test_dataset_images_saved_as_png_pass_through_unchanged(test_images: np.ndarray, tmp_path: Path) -> None:
    # The device must see exactly what training saw, or test accuracy says nothing about the device.
    for i in range(100):
        path = save_png(test_images[i], tmp_path / f"test{i}.png")
        np.testing.assert_array_equal(preprocess(path), test_images[i], err_msg=f"test image {i}")


def test_a_dataset_image_saved_as_gray_rgb_passes_through_unchanged(test_images: np.ndarray) -> None:
    # Many tools save grayscale as RGB; that must not change a single pixel either.
    buffer = io.BytesIO()
    Image.fromarray(test_images[0]).convert("RGB").save(buffer, "PNG")
    np.testing.assert_array_equal(preprocess(buffer.getvalue()), test_images[0])


@pytest.mark.parametrize("index", [3953, 6619, 7899, 9596])
def test_dataset_images_with_a_bright_border_also_pass_through(test_images: np.ndarray, index: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(test_images[index]).save(buffer, "PNG")
    np.testing.assert_array_equal(preprocess(buffer.getvalue()), test_images[index])


@pytest.mark.parametrize("size", [56, 112, 280])
def test_an_enlarged_dataset_image_is_not_negated_again(test_images: np.ndarray, size: int) -> None:
    # A screenshot or an enlarged copy of a dataset image is already light on dark, even as a JPEG.
    original = test_images[1]
    buffer = io.BytesIO()
    Image.fromarray(original).resize((size, size), Image.Resampling.BILINEAR).convert("RGB").save(buffer, "JPEG")
    pixels = preprocess(buffer.getvalue())
    assert np.corrcoef(original.ravel(), pixels.ravel())[0, 1] > 0.85


def test_a_photo_becomes_a_28x28_light_item_on_a_dark_background(photo: Path, tmp_path: Path) -> None:
    pixels = preprocess(photo)
    assert pixels.dtype == np.uint8
    assert pixels.shape == (28, 28)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    assert np.median(border) < 16, "the background should be black, as in the dataset"
    assert pixels.max() > 128, "the item should be light"
    # What --save-input writes is then itself a dataset-like input: classifying it gives the same answer.
    np.testing.assert_array_equal(preprocess(save_png(pixels, tmp_path / "seen.png")), pixels)


# --- foreign errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("foreign", "shown"),
    [(ValueError("bad flatbuffer\n  at offset 12\n  ..."), "bad flatbuffer"), (ValueError(""), "ValueError"),
     (RuntimeError("\n\n  second line only"), "second line only")],
    ids=["multi-line", "empty", "leading-blank-lines"],
)
def test_a_foreign_error_becomes_ours_in_one_line_even_with_an_empty_message(
    foreign: Exception, shown: str
) -> None:
    # An empty message once raised IndexError while the error was being reported.
    from fmnist_edge.runtime.errors import reraise_as

    with pytest.raises(ModelError) as caught, reraise_as(ModelError, "m.tflite: not a valid model", ValueError,
                                                          RuntimeError):
        raise foreign
    assert str(caught.value) == f"m.tflite: not a valid model ({shown})"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_each_model_runs_with_its_own_calibrated_threshold() -> None:
    manifest = load_manifest(bundled_dir())
    for entry in manifest["models"]:
        classifier = Classifier(bundled_dir() / entry["file"])
        assert entry["unsure_threshold"] is not None
        assert classifier.unsure_threshold == entry["unsure_threshold"]


def test_a_model_made_for_another_preprocessing_is_refused_in_one_line(tmp_path: Path) -> None:
    data = (bundled_dir() / "fmnist_cnn_fp32.tflite").read_bytes()
    assert data.count(b'"preprocess_version": 2') == 2  # in the metadata's input contract and at its top level
    other = tmp_path / "other.tflite"
    other.write_bytes(data.replace(b'"preprocess_version": 2', b'"preprocess_version": 9'))
    with pytest.raises(ModelError, match="preprocessing version 9, this runtime has 2"):
        Classifier(other)
    image = Path(__file__).resolve().parent.parent / "examples" / "test_0000_ankle_boot.png"
    result = subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", "--model", str(other), str(image)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "preprocessing version 9" in result.stderr


def test_a_model_copied_without_its_manifest_keeps_its_own_threshold(tmp_path: Path) -> None:
    # The threshold is in the model's metadata: a file copied alone to a device flags what it should.
    for entry in MANIFEST["models"]:
        alone = tmp_path / entry["file"]
        shutil.copy(bundled_dir() / entry["file"], alone)
        classifier = Classifier(alone)
        assert not classifier.verified
        assert classifier.unsure_threshold == entry["unsure_threshold"] is not None


def test_a_model_whose_threshold_is_not_a_probability_is_refused_in_one_line(tmp_path: Path) -> None:
    entry = next(m for m in MANIFEST["models"] if m["file"] == "fmnist_cnn_fp32.tflite")
    data = (bundled_dir() / entry["file"]).read_bytes()
    stored = f'"unsure_threshold": {json.dumps(entry["unsure_threshold"])}'.encode()
    assert data.count(stored) == 1 and b": 0." in stored
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(data.replace(stored, stored.replace(b": 0.", b": 9.")))  # same length: offsets hold
    with pytest.raises(ModelError, match=r"unsure threshold 9\.\d+ is not a number from 0 to 1"):
        Classifier(broken)
