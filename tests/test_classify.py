"""`fmnist-edge classify`, as a user meets it: output formats, every bad input, and the exit codes.

The contract: every input gets either a result or exactly one `error: <input>: ...` line on stderr,
valid inputs are classified even when others fail, and the exit code is 0 (all classified),
1 (some inputs failed) or 2 (usage error: bad option, missing or corrupt model).

The bundled models are replaced whenever a new model is exported, so nothing here asserts a label.
Most tests run the app in-process with typer's CliRunner; the few that must see the real process
(its imports, its raw stderr) start a fresh Python.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from fmnist_edge.app import app
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import MANIFEST_FILE, bundled_dir
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import CLASS_NAMES

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = Path(__file__).resolve().parent / "data" / "photos"  # the 36 CC0 test photos (CREDITS.md)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a scratch folder, so inputs are short relative paths, as a user types them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def photo(workdir: Path) -> str:
    """A real photo of a T-shirt on a floor, as `shirt.jpg` in the working folder."""
    return copy_photo("0_tshirt_top_08.jpg", workdir / "shirt.jpg")


def copy_photo(name: str, target: Path) -> str:
    shutil.copy(PHOTOS / name, target)
    return target.name


def classify(*args: object) -> Result:
    result = CliRunner().invoke(app, ["classify", *map(str, args)])
    # CliRunner reports an uncaught exception as exit code 1, which would pass for "some inputs
    # failed": a crash must fail the test instead.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def error_lines(stderr: str) -> list[str]:
    # LiteRT's C++ core prints an INFO line about its CPU delegate; it is not ours to count.
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("INFO:")]


def rows(stdout: str) -> list[str]:
    """The table's result rows, without its header."""
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("label"), stdout
    return lines[1:]


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def garment(path: Path, value: int = 200) -> Path:
    """A light block on black, already in the dataset's form, so it passes preprocessing unchanged."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:23, 8:20] = value
    Image.fromarray(pixels).save(path)
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose header claims another size: how a decompression bomb starts."""
    Image.new("L", (16, 16)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)  # IHDR data follows the signature, length and type
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))  # keep the chunk's CRC valid
    path.write_bytes(raw)
    return path


# --- classifying -------------------------------------------------------------------------------


def test_a_photo_prints_one_row_and_exits_0(photo: str) -> None:
    result = classify(photo)
    assert result.exit_code == 0, result.stderr
    assert error_lines(result.stderr) == []
    (row,) = rows(result.stdout)
    assert row.endswith(photo)
    assert any(row.startswith(f"{name} ") for name in CLASS_NAMES), row


@pytest.mark.parametrize(
    "options",
    [["--model", f"artifacts/{by_name('onnx-int8').filename}"], ["--backend", "onnxruntime"]],
    ids=["model-path", "backend"],
)
def test_the_onnx_model_runs_by_path_or_by_backend(
    options: list[str], photo: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    monkeypatch.chdir(ROOT)  # --model artifacts/... exactly as typed in a checkout
    result = classify(*options, workdir / photo)
    assert result.exit_code == 0, result.stderr
    assert len(rows(result.stdout)) == 1


ENTRY_SCRIPT = """
import json, sys
from fmnist_edge.main import main
cut = sys.argv.index("--watch")
args, watch = sys.argv[1:cut], set(sys.argv[cut + 1:])
sys.argv = ["fmnist-edge", *args]
try:
    main()
except SystemExit as exc:
    print("exit", exc.code)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & watch)))
"""


def run_entry_point(args: list[str], watch: tuple[str, ...]) -> tuple[int, list[str], str]:
    """Run the console-script entry point in a fresh Python: (exit code, watched modules loaded, stderr).

    A fresh interpreter, because this pytest process may have imported TensorFlow for other test files.
    """
    result = subprocess.run(
        [sys.executable, "-c", ENTRY_SCRIPT, *args, "--watch", *watch], capture_output=True, text=True, timeout=120
    )
    exit_line, loaded = result.stdout.splitlines()[-2:]
    return int(exit_line.removeprefix("exit ")), json.loads(loaded), result.stderr


def test_a_plain_classify_starts_without_the_option_parser(photo: str, workdir: Path) -> None:
    # `classify FILE...` is the everyday command; typer and click are 40 ms of its start-up.
    code, loaded, stderr = run_entry_point(["classify", photo], ("typer", "click", "rich"))
    assert code == 0, stderr
    assert loaded == []


def test_the_plain_and_the_parsed_route_print_the_same(photo: str, workdir: Path) -> None:
    inputs = [photo, _missing(workdir), _text_as_png(workdir)]
    plain, parsed = (
        subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", *options, *inputs],
                       capture_output=True, text=True, timeout=120)
        for options in ([], ["--top-k", "1"])
    )
    assert plain.returncode == parsed.returncode == 1
    assert plain.stdout == parsed.stdout
    assert error_lines(plain.stderr) == error_lines(parsed.stderr)
    assert len(rows(plain.stdout)) == 1


# --- bad inputs: one error line each, the rest still classified ---------------------------------


def _missing(d: Path) -> str:
    return "nope.jpg"


def _empty_folder(d: Path) -> str:
    (d / "empty").mkdir()
    (d / "empty" / "notes.txt").write_text("no images here\n")
    return "empty"


def _zero_bytes(d: Path) -> str:
    (d / "zero.png").write_bytes(b"")
    return "zero.png"


def _truncated_jpeg(d: Path) -> str:
    data = (PHOTOS / "1_trouser_07.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(data[: len(data) // 2])  # the header survives, the scan data does not
    return "cut.jpg"


def _text_as_png(d: Path) -> str:
    (d / "readme.png").write_text("this is not a picture\n")
    return "readme.png"


def _random_as_jpg(d: Path) -> str:
    (d / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    return "noise.jpg"


def _declares(width: int, height: int) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        return png_declaring(d / f"bomb{width}.png", width, height).name

    return make


def _tiny(d: Path) -> str:
    Image.new("RGB", (1, 1), "red").save(d / "dot.png")
    return "dot.png"


def _strip(d: Path) -> str:
    Image.new("RGB", (4000, 8), "blue").save(d / "strip.png")
    return "strip.png"


def _no_match(d: Path) -> str:
    return "holiday/*.jpg"


def _only_text_matches(d: Path) -> str:
    (d / "notes").mkdir()
    (d / "notes" / "todo.txt").write_text("not an image\n")
    return "notes/*"


BAD_INPUTS = {
    # name: (make the input, words the error line must contain)
    "nonexistent-path": (_missing, "no such file"),
    "folder-without-images": (_empty_folder, "no image files"),
    "zero-byte-file": (_zero_bytes, "empty file"),
    "truncated-jpeg": (_truncated_jpeg, "cannot decode"),
    "text-named-png": (_text_as_png, "not an image"),
    "random-bytes-named-jpg": (_random_as_jpg, "not an image"),
    # Three sizes, three guards: Pillow's hard limit, Pillow's warning, and our own pixel limit.
    "bomb-100000x100000": (_declares(100_000, 100_000), "too large"),
    "bomb-10000x10000": (_declares(10_000, 10_000), "too large"),
    "bomb-9000x9000": (_declares(9_000, 9_000), "too large"),
    "1x1-image": (_tiny, "too small"),
    "4000x8-image": (_strip, "too elongated"),
    "glob-matching-nothing": (_no_match, "matches no files"),
    "glob-matching-only-text-files": (_only_text_matches, "matches no image files"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_a_bad_input_gets_one_error_line_and_the_good_one_is_still_classified(
    case: str, photo: str, workdir: Path
) -> None:
    make, words = BAD_INPUTS[case]
    bad = make(workdir)
    result = classify(photo, bad)
    assert result.exit_code == 1
    (row,) = rows(result.stdout)
    assert row.endswith(photo)
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: {bad}: "), line  # names the input exactly as given
    assert words in line, line
    assert "Traceback" not in result.stderr


def test_an_empty_argument_is_an_error_not_the_current_folder(photo: str, workdir: Path) -> None:
    # `fmnist-edge classify "$PHOTO"` with PHOTO unset: Path("") would mean ".", every image here.
    result = classify("", photo)
    assert result.exit_code == 1
    assert len(rows(result.stdout)) == 1
    assert error_lines(result.stderr) == ['error: "": empty path (an unset variable in a script?)']


def test_the_real_process_prints_only_the_error_lines(photo: str, workdir: Path) -> None:
    # CliRunner sees only Python's stderr; a real run also shows whatever C++ or warnings print.
    bad = [make(workdir) for make in (_missing, _text_as_png, _tiny, _declares(100_000, 100_000))]
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_edge", "classify", photo, *bad],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert len(rows(result.stdout)) == 1
    lines = error_lines(result.stderr)
    assert [line.split(": ")[1] for line in lines] == bad, result.stderr  # one each, in input order
    assert all(line.startswith("error: ") for line in lines)


def test_when_every_input_fails_it_still_exits_1(workdir: Path) -> None:
    result = classify(_missing(workdir), _text_as_png(workdir))
    assert result.exit_code == 1
    assert rows(result.stdout) == []
    assert len(error_lines(result.stderr)) == 2


# --- bad models: exit 2 with one line, before any image is read ----------------------------------


def _model_missing(d: Path) -> Path:
    return d / "nope.tflite"


def _random_tflite(d: Path) -> Path:
    path = d / "corrupt.tflite"
    path.write_bytes(np.random.default_rng(1).bytes(8192))
    return path


def _random_onnx(d: Path) -> Path:
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    path = d / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(2).bytes(8192))
    return path


def _tampered(d: Path) -> Path:
    """The bundled manifest beside a copy of the default model with one byte flipped."""
    folder = d / "artifacts"
    folder.mkdir()
    shutil.copy(bundled_dir() / MANIFEST_FILE, folder)
    model = folder / by_name("tflite-int8").filename
    raw = bytearray((bundled_dir() / model.name).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model.write_bytes(raw)
    return model


def _onnx_classifier(path: Path, side: int, classes: int) -> Path:
    """A valid ONNX model: float [N, side, side, 1] -> [N, classes] (average-pooled rows, then a matmul)."""
    onnx = pytest.importorskip("onnx", reason="needs onnx to build the test model")
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [side, classes], np.zeros(side * classes, np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),  # [N,side,side,1] -> [N,side,1,1]
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "test_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", side, side, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _wrong_input_shape(d: Path) -> Path:
    return _onnx_classifier(d / "cifar_shaped.onnx", side=32, classes=10)


def _wrong_output_shape(d: Path) -> Path:
    # Without the check, argmax over 12 scores would index past the ten class names.
    return _onnx_classifier(d / "twelve_classes.onnx", side=28, classes=12)


def _unlisted(d: Path) -> Path:
    """A model beside the bundled manifest that does not list it: a leftover of an earlier export."""
    folder = d / "artifacts"
    folder.mkdir()
    shutil.copy(bundled_dir() / MANIFEST_FILE, folder)
    return Path(shutil.copy(bundled_dir() / by_name("tflite-int8").filename, folder / "old_int8.tflite"))


def _unreadable_manifest(d: Path) -> Path:
    folder = d / "artifacts"
    folder.mkdir()
    (folder / MANIFEST_FILE).write_text('{"models": [')  # cut short
    return Path(shutil.copy(bundled_dir() / by_name("tflite-int8").filename, folder))


def _keras(d: Path) -> Path:
    path = d / "fmnist_cnn.keras"
    path.write_bytes(b"PK\x03\x04 not opened: the runtime refuses .keras by name")
    return path


def _unknown_suffix(d: Path) -> Path:
    path = d / "model.pt"
    path.write_bytes(b"\x00" * 64)
    return path


BAD_MODELS = {
    "missing-file": (_model_missing, "not found"),
    "random-bytes-tflite": (_random_tflite, "not a valid TFLite model"),
    "random-bytes-onnx": (_random_onnx, "not a valid ONNX model"),
    "sha256-mismatch": (_tampered, "SHA-256"),
    "wrong-input-shape": (_wrong_input_shape, "input shape"),
    "wrong-output-shape": (_wrong_output_shape, "output shape"),
    "not-in-the-manifest-beside-it": (_unlisted, "not listed"),
    "unreadable-manifest-beside-it": (_unreadable_manifest, "unreadable manifest"),
    "keras-model": (_keras, "TensorFlow"),
    "unknown-suffix": (_unknown_suffix, "unknown model type"),
}


@pytest.mark.parametrize("case", BAD_MODELS, ids=list(BAD_MODELS))
def test_a_bad_model_is_a_usage_error_with_one_line(case: str, photo: str, workdir: Path) -> None:
    make, words = BAD_MODELS[case]
    model = make(workdir).relative_to(workdir)
    result = classify("--model", model, photo)
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing is classified with a model we cannot trust
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: ") and str(model) in line, line
    assert words in line, line


def test_a_backend_that_cannot_run_the_model_is_a_usage_error(photo: str) -> None:
    model = bundled_dir() / by_name("tflite-int8").filename
    result = classify("--backend", "onnxruntime", "--model", model, photo)
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert "cannot run" in line and model.name in line, line


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--top-k", "0", "x.png"],
        ["--top-k", "11", "x.png"],
        ["--threads", "0", "x.png"],
        ["--no-such-option", "x.png"],
        ["--save-input", "a-file.txt", "x.png"],  # a file where a folder belongs
        ["--save-input", "a-file.txt/seen", "x.png"],  # ... or on the way to one
    ],
    ids=["no-inputs", "top-k-0", "top-k-11", "threads-0", "unknown-option", "save-input-is-a-file",
         "save-input-under-a-file"],
)
def test_usage_errors_exit_2(args: list[str], workdir: Path) -> None:
    garment(workdir / "x.png")
    (workdir / "a-file.txt").write_text("")
    result = classify(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_help_documents_the_exit_codes() -> None:
    result = classify("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # the help is re-wrapped to the terminal's width
    for code in ("0 every input classified", "1 some inputs failed", "2 usage error"):
        assert code in text, result.stdout


# --- valid images in unusual encodings ------------------------------------------------------------


@pytest.fixture(scope="module")
def encodings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real photo saved every way a phone, scanner or editor might save it."""
    d = tmp_path_factory.mktemp("encodings")
    shot = Image.open(PHOTOS / "0_tshirt_top_08.jpg").convert("RGB")
    other = Image.open(PHOTOS / "1_trouser_07.jpg").convert("RGB").resize(shot.size)
    files = {
        "photo": d / "photo.png",
        "other-photo": d / "other.png",
        "cmyk": d / "cmyk.jpg",
        "gray16": d / "gray16.png",
        "palette-transparent": d / "palette.png",
        "rgba": d / "rgba.png",
        "la": d / "la.png",
        "animated-gif": d / "animated.gif",
        "multi-page-tiff": d / "pages.tiff",
        "exif-rotated": d / "exif6.jpg",
        "rotated": d / "rotated.jpg",
        "first-frame": d / "first.png",
        "second-frame": d / "second.png",
    }
    shot.save(files["photo"])
    shot.convert("CMYK").save(files["cmyk"])
    Image.fromarray(np.asarray(shot.convert("L"), np.uint16) * 257).save(files["gray16"])
    shot.quantize(64).save(files["palette-transparent"], transparency=0)
    cutout = Image.new("L", shot.size, 0)  # a product cut-out: transparent around the item
    cutout.paste(255, (20, 20, shot.width - 20, shot.height - 20))
    rgba = shot.convert("RGBA")
    rgba.putalpha(cutout)
    rgba.save(files["rgba"])
    shot.convert("LA").save(files["la"])
    # GIF holds at most 256 colours: reduce the frames first, so the GIF stores them exactly.
    frames = [shot.quantize(256).convert("RGB"), other.quantize(256).convert("RGB")]
    frames[0].save(files["first-frame"])
    frames[1].save(files["second-frame"])
    frames[0].save(files["animated-gif"], save_all=True, append_images=frames[1:], duration=200)
    shot.save(files["multi-page-tiff"], save_all=True, append_images=[other])
    other.save(files["other-photo"])  # after the TIFF: Pillow keeps state from a save on the image
    # Phones store pixels as the sensor saw them, plus an EXIF tag saying how to turn them upright.
    exif = shot.getexif()
    exif[0x0112] = 6  # orientation 6: rotate 90° clockwise to display
    shot.save(files["exif-rotated"], exif=exif, quality=95)
    shot.transpose(Image.Transpose.ROTATE_270).save(files["rotated"], quality=95)
    assert Image.open(files["gray16"]).mode == "I;16"
    assert Image.open(files["palette-transparent"]).mode == "P"
    assert Image.open(files["multi-page-tiff"]).n_frames == 2
    return files


UNUSUAL = ["cmyk", "gray16", "palette-transparent", "rgba", "la", "animated-gif", "multi-page-tiff", "exif-rotated"]


def test_images_in_unusual_encodings_each_classify(encodings: dict[str, Path]) -> None:
    paths = [str(encodings[kind]) for kind in UNUSUAL]
    result = classify("--json", *paths)
    assert result.exit_code == 0, result.stderr
    assert [obj["path"] for obj in json_lines(result.stdout)] == paths
    assert all("label" in obj for obj in json_lines(result.stdout))


def test_exif_orientation_is_applied(encodings: dict[str, Path]) -> None:
    upright = preprocess(encodings["rotated"]).astype(int)
    tagged = preprocess(encodings["exif-rotated"]).astype(int)
    sideways = preprocess(encodings["photo"]).astype(int)  # the same pixels, never turned
    # JPEG re-encoding blurs a few pixels by a level or two; ignoring the tag changes half the image.
    assert np.abs(tagged - upright).mean() < 2
    assert np.abs(tagged - sideways).mean() > 10 * np.abs(tagged - upright).mean()


@pytest.mark.parametrize(
    ("kind", "first", "second"),
    [
        ("animated-gif", "first-frame", "second-frame"),
        ("multi-page-tiff", "photo", "other-photo"),  # TIFF stores the frames losslessly
    ],
)
def test_the_first_frame_of_a_multi_frame_image_is_used(
    kind: str, first: str, second: str, encodings: dict[str, Path]
) -> None:
    pixels = preprocess(encodings[kind])
    np.testing.assert_array_equal(pixels, preprocess(encodings[first]))
    assert not np.array_equal(pixels, preprocess(encodings[second]))


@pytest.mark.parametrize("width", [88, 95, 102, 151])  # 10, 11, 12 and 15 px wide on the canvas
def test_a_photo_is_placed_on_the_canvas_as_the_dataset_places_items(width: int) -> None:
    # Every Fashion-MNIST image has its item's box spanning the long side and starting at
    # ceil((28 - w) / 2) on the short one: an odd width leaves the spare column on the left.
    scene = np.full((420, 320, 3), 235, np.uint8)  # a dark garment on a light floor
    scene[60:360, (320 - width) // 2 : (320 - width) // 2 + width] = 40
    buffer = io.BytesIO()
    Image.fromarray(scene).save(buffer, "PNG")
    lit = preprocess(buffer.getvalue()) > 0
    ys, xs = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    assert (ys[0], ys[-1]) == (0, 27), "the long side spans the canvas"
    assert xs[0] == (28 - len(xs) + 1) // 2, f"a {len(xs)} px wide item starts at column {xs[0]}"


# --- output formats --------------------------------------------------------------------------------


def test_json_prints_one_object_per_input_in_input_order(photo: str, workdir: Path) -> None:
    garment(workdir / "dataset.png")
    result = classify("--json", photo, "nope.jpg", "dataset.png")
    assert result.exit_code == 1
    first, failed, last = json_lines(result.stdout)
    for obj, path in ((first, photo), (last, "dataset.png")):
        assert obj["path"] == path  # as given, not resolved
        assert obj["index"] in range(10)
        assert obj["label"] == CLASS_NAMES[obj["index"]]
        assert 0.0 <= obj["confidence"] <= 1.0
        assert "top_k" not in obj  # only asked for with --top-k
    assert failed.keys() == {"path", "error"}
    assert failed["path"] == "nope.jpg"
    assert "nope.jpg" in failed["error"]


def test_json_with_top_k_lists_the_most_likely_classes(photo: str) -> None:
    result = classify("--json", "--top-k", "3", photo)
    assert result.exit_code == 0, result.stderr
    (obj,) = json_lines(result.stdout)
    top = obj["top_k"]
    assert len(top) == 3
    assert (top[0]["index"], top[0]["label"], top[0]["confidence"]) == (obj["index"], obj["label"], obj["confidence"])
    assert len({entry["index"] for entry in top}) == 3
    assert all(entry["label"] == CLASS_NAMES[entry["index"]] for entry in top)
    confidences = [entry["confidence"] for entry in top]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) <= 1.0 + 1e-3


def test_the_table_with_top_k_shows_the_next_classes(photo: str) -> None:
    result = classify("--top-k", "3", photo)
    assert result.exit_code == 0, result.stderr
    (row,) = rows(result.stdout)
    label = next(name for name in CLASS_NAMES if row.startswith(f"{name} "))
    confidence = float(re.search(r"(\d+\.\d)%", row).group(1))
    rest = re.fullmatch(r".*\((.*)\)", row)
    assert rest, row
    runners_up = [re.fullmatch(r"(.+) (\d+\.\d)%", part).groups() for part in rest.group(1).split(", ")]
    assert len(runners_up) == 2
    assert all(name in CLASS_NAMES and name != label for name, _ in runners_up)
    assert all(float(percent) <= confidence for _, percent in runners_up)


def test_save_input_writes_the_exact_28x28_image_the_model_saw(photo: str, workdir: Path) -> None:
    (workdir / "more").mkdir()
    garment(workdir / "more" / "shirt.png")  # the same stem as the photo: both must be kept
    result = classify("--save-input", "seen", photo, "more/shirt.png", "nope.jpg")
    assert result.exit_code == 1
    saved = sorted((workdir / "seen").iterdir())
    assert [p.name for p in saved] == ["shirt-2.png", "shirt.png"]  # one per classified input
    for name, source in (("shirt.png", photo), ("shirt-2.png", "more/shirt.png")):
        image = Image.open(workdir / "seen" / name)
        assert (image.size, image.mode) == ((28, 28), "L")
        np.testing.assert_array_equal(np.asarray(image), preprocess(source))
    # Classifying the saved image reproduces the answer: it is what the model saw.
    again = classify("--json", "seen/shirt.png", photo)
    assert again.exit_code == 0, again.stderr
    saved_result, photo_result = json_lines(again.stdout)
    assert (saved_result["index"], saved_result["confidence"]) == (photo_result["index"], photo_result["confidence"])


# --- folders and globs -----------------------------------------------------------------------------


@pytest.fixture
def folder(workdir: Path) -> Path:
    d = workdir / "wardrobe"
    (d / "nested").mkdir(parents=True)
    for name in ("c.png", "a.jpg", "b.gif", "d.png"):
        garment(d / name)
    garment(d / "nested" / "e.png")  # folders are not searched recursively
    (d / "notes.txt").write_text("not an image, so not an input\n")
    return d


WARDROBE_IMAGES = ["wardrobe/a.jpg", "wardrobe/b.gif", "wardrobe/c.png", "wardrobe/d.png"]


def classified_paths(arg: str) -> list[str]:
    """The paths `classify --json ARG` reported, in output order; every one must have succeeded."""
    result = classify("--json", arg)
    assert result.exit_code == 0, result.stderr
    return [obj["path"] for obj in json_lines(result.stdout)]


def test_a_folder_expands_to_its_images_in_sorted_order(folder: Path) -> None:
    assert classified_paths("wardrobe") == WARDROBE_IMAGES


def test_a_glob_expands_to_its_matches_in_sorted_order(folder: Path) -> None:
    # Quoted, so the program expands it rather than the shell (as on Windows, or from a script).
    assert classified_paths("wardrobe/*.png") == ["wardrobe/c.png", "wardrobe/d.png"]


def test_a_glob_matches_images_only_and_expands_the_folders_it_matches(folder: Path) -> None:
    # As the shell would pass them: notes.txt is not an image; nested/ is a folder, so its images.
    assert classified_paths("wardrobe/*") == [*WARDROBE_IMAGES, "wardrobe/nested/e.png"]


def test_a_glob_matching_nothing_is_an_error_line(folder: Path) -> None:
    result = classify("wardrobe/*.webp", "wardrobe/a.jpg")
    assert result.exit_code == 1
    assert len(rows(result.stdout)) == 1
    assert error_lines(result.stderr) == ["error: wardrobe/*.webp: pattern matches no files"]
