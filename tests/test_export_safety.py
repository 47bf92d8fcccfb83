"""`export` is checked before it works, locked against a second export, and atomic when killed.

Publishing is tested on its own (export/publish.py), with the bundled models as the old export
and the float model dressed as a new int8 one: a kill at each step must leave a folder that
holds one complete export, old or new, which classify verifies and trusts, and nothing else.
A real export runs once, to be interrupted by SIGTERM (it needs the smoke model, so it is slow).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fmnist_edge.app import app
from fmnist_edge.common.lock import LOCK_FILE, FolderLock
from fmnist_edge.runtime import Classifier, ModelError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.manifest import MANIFEST_FILE, load_manifest, sha256_file
from fmnist_edge.runtime.model_info import read_metadata

INT8 = by_name("tflite-int8").filename
ONNX_FP32 = by_name("onnx-fp32").filename


def invoke(*args: object) -> Result:
    result = CliRunner().invoke(app, [*map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- arguments, space, writability: refused before any work --------------------------------------


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A .keras path that exists: the checks under test come before anything loads it."""
    path = tmp_path / "model" / "fmnist_cnn.keras"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 never loaded")
    return path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--formats", ","], "names no format"),
        (["--formats", " "], "names no format"),
        (["--formats", "tflite,pt"], "unknown format"),
        (["--calibration", "5"], "--calibration"),
        (["--calibration", "70000"], "--calibration"),
        (["--seed", "-1"], "--seed"),
    ],
    ids=["comma-only", "blank", "unknown", "calibration-too-small", "calibration-too-large", "negative-seed"],
)
def test_bad_arguments_are_refused_before_any_work_and_touch_nothing(
    args: list[str], words: str, fake_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorflow", reason="export needs the [train] extra")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_FILE).write_text("the previous export's manifest")
    result = invoke("export", fake_model, "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "[1/" not in result.output  # no step started
    assert (out / MANIFEST_FILE).read_text() == "the previous export's manifest"


def test_an_out_that_cannot_be_created_is_refused_before_any_work(fake_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="export needs the [train] extra")
    (tmp_path / "a-file").write_text("")
    result = invoke("export", fake_model, "--out", tmp_path / "a-file" / "out")
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert "cannot create the folder" in line and "[1/" not in result.output


def test_an_out_without_room_is_refused_before_any_work(
    fake_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorflow", reason="export needs the [train] extra")
    from fmnist_edge.export import publish

    monkeypatch.setattr(publish.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    result = invoke("export", fake_model, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert "1 MiB free" in line and "[1/" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LOCK_FILE]  # no staging left behind


# --- the lock: a second export refuses, a killed one leaves nothing held ----------------------------

HOLD = """
import sys, time
from fmnist_edge.common.lock import FolderLock
with FolderLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_export_into_a_locked_out_refuses_and_a_killed_holder_releases_it(
    fake_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorflow", reason="export needs the [train] extra")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = invoke("export", fake_model, "--out", out)
        assert result.exit_code == 2, result.output
        (line,) = lines(result.stderr)
        assert "another export is writing there" in line
        with pytest.raises(Exception, match="another export"):
            FolderLock(out).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # SIGKILL ran no cleanup, yet the kernel dropped the lock: the next export gets past it (and
    # fails later, on the fake model).
    result = invoke("export", fake_model, "--out", out)
    assert result.exit_code == 2 and "another export" not in result.output, result.output


# --- publishing: a kill at any step leaves one complete export ----------------------------------------


# The checkout's export, which has every file the manifest lists; the installed package has only
# what the device needs (no reference logits, no photo inputs).
CHECKOUT_ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def old_export(folder: Path) -> dict:
    """The shipped export, copied: what --out held before."""
    folder.mkdir()
    manifest = load_manifest(CHECKOUT_ARTIFACTS)
    records = [manifest[key] for key in ("golden", "reference_logits", "photo_val_inputs") if manifest.get(key)]
    for entry in manifest["models"] + records:
        shutil.copy(CHECKOUT_ARTIFACTS / entry["file"], folder)
    shutil.copy(CHECKOUT_ARTIFACTS / MANIFEST_FILE, folder)
    return manifest


def new_export(staging: Path, old: dict) -> dict:
    """A new export of the int8 model (the float model's bytes stand in for it), dropping the float ONNX."""
    staging.mkdir()
    shutil.copy(CHECKOUT_ARTIFACTS / by_name("tflite-fp32").filename, staging / INT8)
    manifest = json.loads(json.dumps(old))
    entry = next(m for m in manifest["models"] if m["file"] == INT8)
    entry["sha256"], entry["size_bytes"] = sha256_file(staging / INT8), (staging / INT8).stat().st_size
    manifest["models"] = [m for m in manifest["models"] if m["file"] != ONNX_FP32]  # stale: to be removed
    manifest["golden"] = None  # recorded from the old int8 model
    manifest["unsure_threshold"] = entry["unsure_threshold"] = 0.25  # tells old from new
    return manifest


PUBLISH = """
import json, os, sys
from pathlib import Path
from fmnist_edge.export.publish import publish
out, staging, manifest, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]

def hook(step):
    if step == kill_at:
        os._exit(9)  # as SIGKILL: no finally, no atexit

publish(out, staging, manifest, hook)
"""
STEPS = [f"moved {INT8}", "manifest A", f"linked {INT8}", "manifest B", "cleaned", "never"]


def assert_complete(folder: Path) -> dict:
    """The manifest passes the schema and every file it lists is there with its hash; classify
    trusts the default model and answers with the threshold the model carries."""
    manifest = load_manifest(folder)
    records = manifest["models"] + [manifest[k] for k in ("golden", "reference_logits") if manifest.get(k)]
    for entry in records:
        assert sha256_file(folder / entry["file"]) == entry["sha256"], entry["file"]
    classifier = Classifier(folder / manifest["default_model"])
    assert classifier.verified
    assert classifier.unsure_threshold == read_metadata(folder / manifest["default_model"])["unsure_threshold"]
    return manifest


@pytest.mark.parametrize("kill_at", STEPS)
def test_a_kill_at_any_step_of_publishing_leaves_one_complete_export(kill_at: str, tmp_path: Path) -> None:
    out, staging = tmp_path / "out", tmp_path / "out" / ".fmnist-edge-staging-test"
    old = old_export(out)
    new = new_export(staging, old)
    result = subprocess.run([sys.executable, "-c", PUBLISH, str(out), str(staging), json.dumps(new), kill_at],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == (0 if kill_at == "never" else 9), result.stderr
    manifest = assert_complete(out)
    committed = STEPS.index(kill_at) >= STEPS.index("manifest A")
    assert manifest["unsure_threshold"] == (new if committed else old)["unsure_threshold"]
    # A model named by --model is trusted only as the manifest lists it: run, or refused, never unverified.
    try:
        named = Classifier(out / INT8)
    except ModelError as exc:
        assert "not listed" in str(exc) or "does not match" in str(exc), exc
    else:
        assert named.verified and sha256_file(out / INT8) in {m["sha256"] for m in manifest["models"]}

    # The next export cleans up whatever the killed one left, and publishes normally.
    from fmnist_edge.export.publish import publish, remove_leftovers

    with FolderLock(out):
        remove_leftovers(out)
        again = tmp_path / "again"
        new_export(again, old)
        publish(out, again, new)
    final = assert_complete(out)
    assert final["unsure_threshold"] == new["unsure_threshold"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [LOCK_FILE, MANIFEST_FILE, *(m["file"] for m in new["models"]),
         *(new[key]["file"] for key in ("reference_logits", "photo_val_inputs") if new.get(key))]
    ), "stale files (the float ONNX, the old golden data), content-addressed copies, staging: all gone"


def test_leftovers_are_only_files_export_writes(tmp_path: Path) -> None:
    from fmnist_edge.export.publish import remove_leftovers

    old_export(tmp_path / "out")
    out = tmp_path / "out"
    (out / ".fmnist-edge-staging-abc123").mkdir()
    (out / ".fmnist-edge-staging-abc123" / "saved_model.pb").write_bytes(b"8 MB of work")
    (out / f".{INT8}.k3j4h5.tmp.tflite").write_bytes(b"half")
    (out / "fmnist_cnn_int8.0123456789ab.tflite").write_bytes(b"unlisted copy")
    mine = ["notes.tmp", ".my.tmp", "holiday.0123456789ab.jpg", "README.md"]
    for name in mine:
        (out / name).write_text("the user's")
    removed = remove_leftovers(out)
    assert sorted(removed) == sorted([".fmnist-edge-staging-abc123", f".{INT8}.k3j4h5.tmp.tflite",
                                      "fmnist_cnn_int8.0123456789ab.tflite"])
    assert all((out / name).exists() for name in mine)
    assert_complete(out)


# --- a real export, interrupted -------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_during_a_real_export_exits_130_and_leaves_the_previous_export_and_no_staging(
    smoke_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    old_export(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    script = textwrap.dedent("""
        import sys
        from fmnist_edge.main import main
        sys.argv = ["fmnist-edge", "export", sys.argv[1], "--out", sys.argv[2], "--force"]
        main()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(smoke_run / "fmnist_cnn.keras"), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("[2/"):  # the model is loaded and staging exists: mid-work
            break
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "keeps its previous export" in stderr
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_FILE}
    assert after == before, "the previous export is untouched and no staging folder or temporary file is left"
    assert_complete(out)
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("fmnist-edge-export-*")
                if p.stat().st_mtime > out.stat().st_mtime], "nothing staged in the system temp folder"
