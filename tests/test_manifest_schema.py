"""A manifest is checked before anything in it is used: a malformed one is one line and exit 2.

Each case writes a manifest beside a copy of the bundled int8 model and runs `classify --model`
on that copy, as a user with a damaged or hostile folder would; and the unverified case: a model
with no manifest runs only when named, with a warning, flags "unsure" with the threshold it carries,
and never from a guess.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import garment, invoke

from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import MANIFEST_FILE, bundled_dir, load_manifest
from fmnist_edge.runtime.manifest_schema import MAX_MANIFEST_BYTES

MODEL = by_name("tflite-int8").filename
GOOD = json.loads((bundled_dir() / MANIFEST_FILE).read_text(encoding="utf-8"))


def edited(change: Callable[[dict], object]) -> bytes:
    document = json.loads(json.dumps(GOOD))
    result = change(document)
    return json.dumps(document if result is None else result).encode()


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _entry(key: str, value: object = None, drop: bool = False) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        entry = next(m for m in d["models"] if m["file"] == MODEL)
        if drop:
            del entry[key]
        else:
            entry[key] = value

    return change


BAD_MANIFESTS: dict[str, bytes] = {
    "an-array": edited(lambda d: [d]),
    "a-string": b'"manifest"',
    "models-null": edited(_set("models", None)),
    "models-an-object": edited(_set("models", {"file": MODEL})),
    "entry-without-file": edited(_entry("file", drop=True)),
    "entry-without-sha256": edited(_entry("sha256", drop=True)),
    "numeric-sha256": edited(_entry("sha256", 12345)),
    "short-sha256": edited(_entry("sha256", "abc")),
    "entry-a-string": edited(lambda d: d["models"].append("fmnist_cnn_int8.tflite")),
    "file-with-a-path": edited(_entry("file", "../artifacts/" + MODEL)),
    "file-listed-twice": edited(lambda d: d["models"].append(dict(d["models"][-1]))),
    "threshold-a-string": edited(_set("unsure_threshold", "0.7")),
    "threshold-negative": edited(_set("unsure_threshold", -0.1)),
    "threshold-above-1": edited(_set("unsure_threshold", 1.5)),
    "threshold-true": edited(_set("unsure_threshold", True)),
    "threshold-nan": edited(_set("unsure_threshold", float("nan"))),  # json.dumps writes the token NaN
    "default-model-escapes": edited(_set("default_model", "../../etc/passwd")),
    "default-model-not-listed": edited(_set("default_model", "other.tflite")),
    "golden-with-a-path": edited(_set("golden", {"file": "/etc/passwd", "sha256": "0" * 64})),
    "schema-missing": edited(lambda d: d.pop("schema")),
    "schema-from-the-future": edited(_set("schema", 99)),
    "not-utf-8": edited(_set("created", "x")).replace(b'"x"', b'"\xff\xfe"'),
    "truncated": json.dumps(GOOD).encode()[:200],
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
    "too-large": edited(lambda d: None) + b" " * MAX_MANIFEST_BYTES,
}


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=list(BAD_MANIFESTS))
def test_a_malformed_manifest_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(bundled_dir() / MODEL, folder)
    (folder / MANIFEST_FILE).write_bytes(BAD_MANIFESTS[case])
    result = invoke("classify", "--model", folder / MODEL, garment(tmp_path / "x.png"))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and MANIFEST_FILE in line and "manifest" in line.split(MANIFEST_FILE)[1], line


def test_the_bundled_manifest_passes_the_schema() -> None:
    assert load_manifest()["models"]


def without_own_threshold(model: Path) -> None:
    """Blank the threshold in the model's metadata, as in models exported before it was written there
    (same length, so the flatbuffer's offsets hold)."""
    data = model.read_bytes()
    (stored,) = re.findall(rb'"unsure_threshold": [0-9.]+', data)
    model.write_bytes(data.replace(stored, b'"unsure_threshold": null'.ljust(len(stored))))


def test_a_model_without_a_manifest_runs_only_when_named_with_a_warning_and_its_own_threshold(tmp_path: Path) -> None:
    model = Path(shutil.copy(bundled_dir() / MODEL, tmp_path / "mine.tflite"))
    own = next(m for m in GOOD["models"] if m["file"] == MODEL)["unsure_threshold"]
    result = invoke("classify", "--json", "--model", model, garment(tmp_path / "x.png"))
    assert result.exit_code == 0, result.output
    (answer,) = map(json.loads, result.stdout.splitlines())
    assert answer["unsure"] is (answer["confidence"] < own)  # the threshold travels in the model file
    (warning,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert warning.startswith("warning: ") and "unverified" in warning and str(model) in warning

    without_own_threshold(model)
    result = invoke("classify", "--json", "--model", model, garment(tmp_path / "x.png"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unsure"] is None  # no threshold was calibrated for it, so none is guessed


def test_a_manifest_without_a_threshold_flags_nothing_rather_than_guessing(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    without_own_threshold(Path(shutil.copy(bundled_dir() / MODEL, folder)))
    data = (folder / MODEL).read_bytes()

    def no_threshold(d: dict) -> None:  # neither the model's own, nor its entry's, nor the folder's
        d["unsure_threshold"] = None
        entry = next(m for m in d["models"] if m["file"] == MODEL)
        entry["unsure_threshold"] = None
        entry["sha256"], entry["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)

    (folder / MANIFEST_FILE).write_bytes(edited(no_threshold))
    result = invoke("classify", "--json", "--model", folder / MODEL, garment(tmp_path / "x.png"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unsure"] is None
    assert result.stderr.strip() == ""  # verified: no warning
