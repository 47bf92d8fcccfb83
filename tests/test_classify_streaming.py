"""`classify` on long and hostile runs: it streams, stops cleanly, survives any input, and bounds memory.

These are real processes (signals, pipes, locales and memory limits are process matters), started
on a folder of small dataset PNGs that takes a couple of seconds to classify in full.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import garment, invoke
from PIL import Image
from typer.testing import Result

from fmnist_edge.runtime.golden import load_golden

FOLDER_SIZE = 3000  # enough that a run lasts well past its first line on a busy 2-core machine


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FOLDER_SIZE dataset-like PNGs (the golden test images, repeated)."""
    folder = tmp_path_factory.mktemp("many")
    images = load_golden().images
    for i in range(FOLDER_SIZE):
        Image.fromarray(images[i % len(images)]).save(folder / f"img{i:05d}.png", compress_level=1)
    return folder


def start(*args: str, env: dict | None = None, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmnist_edge", "classify", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kwargs)


def classify(*args: object) -> Result:
    return invoke("classify", *args)


# --- streaming, signals and the closed pipe -------------------------------------------------------


@pytest.mark.parametrize("route", [[], ["--json"]], ids=["plain-route", "parsed-route"])
def test_lines_arrive_while_the_run_is_still_going(route: list[str], many: Path) -> None:
    proc = start(*route, str(many))
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first and second, proc.stderr.read()
        assert proc.poll() is None, "the first lines came only when everything was done"
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("route", [[], ["--json"]], ids=["plain-route", "parsed-route"])
def test_a_signal_ends_the_run_after_the_current_line_with_exit_130(
    sig: signal.Signals, route: list[str], many: Path
) -> None:
    proc = start(*route, str(many))
    head = [proc.stdout.readline() for _ in range(3)]
    proc.send_signal(sig)
    # Not communicate(): it reads the pipe itself and would skip what readline() has buffered.
    rest, stderr = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130, stderr
    printed = [line for line in "".join(head).splitlines() + rest.splitlines() if line]
    body = printed if route else printed[1:]  # the table has a header
    assert 2 <= len(body) < FOLDER_SIZE, "it stopped neither at once nor at the end"
    for line in body:  # every line printed is whole: nothing cut off mid-write
        if route:
            assert line.startswith("{") and json.loads(line)["path"].startswith(str(many)), line
        else:
            assert line.rstrip().endswith(".png"), line
    assert "Traceback" not in stderr
    assert f"interrupted ({sig.name})" in stderr


def handles_sigterm(pid: int) -> bool:
    """Whether the process has set its own SIGTERM handler yet (Linux: the SigCgt mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_a_signal_during_start_up_still_exits_130(many: Path) -> None:
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux's /proc to see when the handlers are set")
    proc = start("--json", str(many))
    deadline = time.monotonic() + 30
    while not handles_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)  # main() has begun, typer and the model are still loading
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr


@pytest.mark.parametrize("route", [[], ["--json"]], ids=["plain-route", "parsed-route"])
def test_a_closed_pipe_ends_the_run_quietly(route: list[str], many: Path) -> None:
    # `fmnist-edge classify DIR | head -3`
    proc = start(*route, str(many))
    for _ in range(3):
        proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert stderr == ""  # no BrokenPipeError, no "Exception ignored"
    assert proc.returncode == 130


def test_the_shell_pipeline_to_head_prints_three_lines_and_nothing_else(many: Path) -> None:
    result = subprocess.run(f"'{sys.executable}' -m fmnist_edge classify '{many}' | head -3", shell=True,
                            capture_output=True, text=True, timeout=60)
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == ""


# --- file names in any locale ---------------------------------------------------------------------


NAMES = {
    "latin-1-bytes": b"caf\xe9.png",  # not valid UTF-8: Python hands it over with a surrogate escape
    "newline": b"new\nline.png",  # would forge a second line
    "escape-sequence": b"\x1b[31mred.png",  # would recolour the terminal
    "utf-8": "été.png".encode(),
}


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_any_file_name_prints_as_one_safe_line_in_any_locale(encoding: str, tmp_path: Path) -> None:
    for raw in NAMES.values():
        garment(Path(os.fsdecode(bytes(tmp_path) + b"/" + raw)))
    env = {"PYTHONIOENCODING": encoding, "LC_ALL": "C.UTF-8"}
    table = start(str(tmp_path), env=env).communicate(timeout=60)
    lines = start("--json", str(tmp_path), env=env).communicate(timeout=60)
    assert "Traceback" not in table[1] + lines[1]
    rows = table[0].splitlines()[1:]
    assert len(rows) == len(NAMES) and all(row.isprintable() for row in rows), rows
    assert {r.split("  ")[-1].rsplit("/", 1)[1] for r in rows} >= {"caf\\xe9.png", "new\\x0aline.png",
                                                                     "\\x1b[31mred.png"}
    paths = {os.fsencode(json.loads(line)["path"]) for line in lines[0].splitlines()}
    assert {p.rsplit(b"/", 1)[1] for p in paths} == set(NAMES.values())  # JSON keeps the exact bytes


# --- --save-input ------------------------------------------------------------------------------------


def test_save_input_refuses_a_folder_that_holds_an_input_however_it_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    garment(tmp_path / "photos" / "x.png")
    before = (tmp_path / "photos" / "x.png").read_bytes()
    os.symlink(tmp_path / "photos", tmp_path / "link")
    for target in ("photos", "./photos/", "link", str(tmp_path / "photos")):
        result = classify("--save-input", target, "photos")
        assert result.exit_code == 2, result.output
        assert "holds inputs" in result.stderr and result.stdout == ""
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["x.png"]
    assert (tmp_path / "photos" / "x.png").read_bytes() == before


def test_save_input_never_overwrites_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seen").mkdir()
    (tmp_path / "seen" / "x.png").write_bytes(b"the user's own file")
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "seen" / "x-2.png")  # a dangling link is not followed
    garment(tmp_path / "x.png")
    result = classify("--save-input", "seen", "x.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "seen" / "x.png").read_bytes() == b"the user's own file"
    assert not (tmp_path / "elsewhere.txt").exists()
    assert Image.open(tmp_path / "seen" / "x-3.png").size == (28, 28)
    classify("--save-input", "seen", "x.png")  # a second run adds, and replaces nothing
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["x-2.png", "x-3.png", "x-4.png", "x.png"]


# --- any failure of one input is one line -------------------------------------------------------------


# EXIF blocks found by mutating a valid one (orientation 6 and three more tags); each one made
# ImageOps.exif_transpose raise: struct.error, TypeError and AttributeError respectively.
BAD_EXIF = [
    "4578696600004d4d002a00000008c704010f0002000000060000003e011200030000000100060000011a00050000000100000044"
    "015600020000000327770000000000004d616b6572000000004800000001",
    "4578696600004d4d002a000000080004011f0002000000060000003e011200030000000100060000011a00050000000100000044"
    "013100020000000373770000000000004d616b6572000000004800000001",
    "4578696600004d4d002a000000080004010f0002000000060000003e011200030000000100060000011d00050000000100000044"
    "013100a1000000037377000000000000f5e46b6572000000004800000001",
]


def _exif_jpeg(path: Path) -> list[Path]:
    made = []
    for i, block in enumerate(BAD_EXIF):
        made.append(path.with_name(f"exif{i}.jpg"))
        Image.new("RGB", (64, 48), (200, 40, 40)).save(made[-1], exif=bytes.fromhex(block))
    return made


def _avif_named_png(path: Path) -> Path:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    Image.new("RGB", (64, 48), "blue").save(path.with_suffix(".avif"))
    raw = bytearray(path.with_suffix(".avif").read_bytes())
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)  # the header survives, the payload does not
    path.write_bytes(bytes(raw))
    path.with_suffix(".avif").unlink()
    return path


@pytest.mark.parametrize("make", [_exif_jpeg, _avif_named_png], ids=["malformed-exif", "corrupt-avif-as-png"])
def test_a_file_that_breaks_a_decoder_is_one_line_and_the_batch_goes_on(make: object, tmp_path: Path) -> None:
    bad = make(tmp_path / "bad.png")
    bad = bad if isinstance(bad, list) else [bad]
    good = garment(tmp_path / "good.png")
    result = classify("--json", *bad, good)
    assert result.exit_code in (0, 1), result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["path"] for o in objects] == [str(p) for p in [*bad, good]]  # one line each, in order
    assert "label" in objects[-1]
    errors = [o["error"] for o in objects if "error" in o]
    assert [line for line in result.stderr.splitlines() if line] == [f"error: {e}" for e in errors]


@pytest.mark.parametrize("error", [RuntimeError("decoder exploded"), MemoryError(), KeyError("plugin"),
                                   IndexError("tile"), AssertionError("codec")])
def test_whatever_one_input_raises_the_batch_goes_on(
    error: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmnist_edge import classify as classify_module

    real = classify_module.preprocess

    def flaky(path: Path, name: str | None = None) -> np.ndarray:
        if Path(path).name == "b.png":
            raise error
        return real(path, name=name)

    monkeypatch.setattr(classify_module, "preprocess", flaky)
    for name in "abc":
        garment(tmp_path / f"{name}.png")
    result = classify(tmp_path)
    assert result.exit_code == 1
    assert [row.split()[-1] for row in result.stdout.splitlines()[1:]] == [str(tmp_path / n) for n in ("a.png",
                                                                                                       "c.png")]
    (line,) = [x for x in result.stderr.splitlines() if x]
    assert line.startswith(f"error: {tmp_path / 'b.png'}: ") and type(error).__name__ in line


# --- memory per image is bounded ------------------------------------------------------------------------


def _huge(folder: Path) -> list[Path]:
    """64 MP images that are small on disk: 16-bit, float and RGBA."""
    made = []
    for mode, name, options in (("I;16", "deep.png", {}), ("F", "float.tif", {"compression": "tiff_adobe_deflate"}),
                                ("RGBA", "alpha.png", {})):
        image = Image.new(mode, (8000, 8000), {"I;16": 300, "F": 0.5, "RGBA": (10, 20, 30, 128)}[mode])
        image.save(folder / name, **options)
        made.append(folder / name)
        del image
    return made


@pytest.mark.slow
def test_a_64_megapixel_16_bit_float_or_rgba_image_classifies_under_a_memory_cap(tmp_path: Path) -> None:
    # Converted to float at full size, the 16-bit one alone peaked at 1.7 GB; now each is reduced
    # as soon as it is decoded. 800 MB of address space is well under that, and enough for the run.
    cap = 800 * 2**20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    images = _huge(tmp_path)
    proc = start("--json", *map(str, images), preexec_fn=limit)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(p) for p in images]
