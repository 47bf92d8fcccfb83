"""evaluate-photos at its edges: names it did not choose, a report folder it cannot use, a contact sheet
for thousands of photos, and outputs that are closed or full."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import garment, invoke
from PIL import Image

import fmnist_edge.photo_report as photo_report

PHOTOS = Path(__file__).resolve().parent / "data" / "photos"
A, B = "0_tshirt_top_08.jpg", "9_ankle_boot_08.jpg"
FORGED = "x.jpg\nok   forged.jpg                   true Bag          predicted Bag          99.0%"


def two_photos(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (A, B):
        shutil.copy(PHOTOS / name, folder / name)
    (folder / "labels.csv").write_text(f"file,label\n{A},0\n{B},9\n{extra}", encoding="utf-8")
    return folder


def run_cli(*args: object, **streams: object) -> subprocess.CompletedProcess:
    """`fmnist-edge ARGS` in a process of its own; `streams` replace the captured stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "fmnist_edge", *map(str, args)], text=True, timeout=300,
                          **(streams or {"capture_output": True}))


# --- what is printed -------------------------------------------------------------------------------


def test_a_name_in_labels_csv_cannot_forge_a_line_or_reach_the_terminal(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos", f'"{FORGED}",3\n"\x1b[2J\x1b[31mred.jpg",4\n')
    shutil.copy(PHOTOS / A, folder / FORGED)
    shutil.copy(PHOTOS / B, folder / "\x1b[2J\x1b[31mred.jpg")
    (folder / "gone\n.jpg").write_bytes(b"not an image")  # the error line names it too
    with (folder / "labels.csv").open("a") as fh:
        fh.write('"gone\n.jpg",5\n')
    result = invoke("evaluate-photos", folder, "--no-plots")
    assert result.exit_code == 1, result.output
    printed = result.stdout.splitlines()
    assert not any(line.startswith("ok   forged") for line in printed)
    assert "\x1b" not in result.output
    assert sum(line.startswith(("ok  ", "MISS")) for line in printed) == 4
    assert any("x.jpg\\x0aok   forged.jpg" in line for line in printed)
    assert any("\\x1b[2J\\x1b[31mred.jpg" in line for line in printed)
    assert result.stderr.splitlines() == ["error: gone\\x0a.jpg: not an image Pillow can read"]


def test_an_error_naming_a_hostile_path_is_one_escaped_line(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos\n\x1b[31m", f"{A},0\n")
    result = invoke("evaluate-photos", folder, "--no-plots")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "\x1b" not in result.stderr
    assert "photos\\x0a\\x1b[31m/labels.csv:4: '0_tshirt_top_08.jpg' is listed again" in result.stderr


# --- --out -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "under-a-file", "the-photo-folder"])
def test_an_unusable_report_folder_is_refused_before_any_photo_is_scored(where: str, tmp_path: Path) -> None:
    # gone.jpg would be an error line on stderr if any photo were scored.
    folder = two_photos(tmp_path / "photos", "gone.jpg,3\n")
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "alias").symlink_to(folder)  # the photo folder by another name: compared by inode
    out = {"file": tmp_path / "file", "under-a-file": tmp_path / "file" / "report",
           "the-photo-folder": tmp_path / "alias"}[where]
    result = invoke("evaluate-photos", folder, "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: --out {out}: ")
    assert (tmp_path / "file").read_text() == "not a folder"
    assert sorted(p.name for p in folder.iterdir()) == sorted([A, B, "labels.csv"])


def test_a_folder_that_cannot_be_written_is_refused_before_any_photo_is_scored(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos", "gone.jpg,3\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root may write anywhere: a read-only filesystem shows the same refusal
            locked = Path("/proc/self/report")
        result = invoke("evaluate-photos", folder, "--out", locked)
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith(f"error: --out {locked}: cannot write in ")


def test_the_contact_sheet_comes_in_pages_and_a_larger_runs_pages_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(photo_report, "PAGE_PHOTOS", 2)
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = ["file,label"] + [f"{garment(folder / f'g{i}.png').name},{i % 10}" for i in range(5)]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    out.mkdir()
    (out / "contact_sheet-9.png").write_bytes(b"from an earlier run with more photos")
    (out / "contact_sheet-notes.png").write_bytes(b"not one of ours")
    result = invoke("evaluate-photos", folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"report: {out} (contact sheet in 3 pages)"
    pages = ["contact_sheet.png", "contact_sheet-2.png", "contact_sheet-3.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*pages, "confusion.png", "contact_sheet-notes.png"])
    heights = []
    for name in pages:
        with Image.open(out / name) as page:
            heights.append(page.height)
    assert heights[0] == heights[1] == photo_report.THUMB + 30 and heights[2] == heights[0]


MEASURED = """
import atexit, resource, sys
cap = int(sys.argv[1])
if cap:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import fmnist_edge.photo_report
fmnist_edge.photo_report.PAGE_PHOTOS = 12  # the shipped 300, scaled down with the photo count

def peak() -> None:
    with open("/proc/self/status") as fh:
        print("VmPeak", next(line for line in fh if line.startswith("VmPeak")).split()[1], file=sys.__stderr__)

atexit.register(peak)
sys.argv = ["fmnist-edge", *sys.argv[2:]]
from fmnist_edge.main import main
main()
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak address space from /proc")
def test_the_report_for_many_photos_fits_in_the_memory_a_few_photos_need(tmp_path: Path) -> None:
    # 20,000 photos made one 1.4 GB contact sheet and died under a 1.5 GB cap. Scaled down: the
    # address space of a run on 24 photos, plus 40 MB, must be enough for 1,000 (one sheet of
    # them would be 95 MB).
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = np.zeros((28, 28), np.uint8)
    rows = ["file,label"]
    for i in range(1000):
        pixels[4:24, 6:22] = 40 + i % 200
        Image.fromarray(pixels).save(folder / f"p{i:04d}.png", compress_level=1)
        rows.append(f"p{i:04d}.png,{i % 10}")
    (folder / "labels.csv").write_text("\n".join(rows[:25]) + "\n")
    env = {"MALLOC_ARENA_MAX": "2"}  # address space reserved per thread would otherwise vary with the cores
    few = run_cli_code(MEASURED, 0, "evaluate-photos", folder, "--threads", "1", "--out", tmp_path / "few", env=env)
    assert few.returncode == 0, few.stderr
    cap = (int(few.stderr.split("VmPeak ")[1].split()[0]) + 40 * 1024) * 1024
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    many = run_cli_code(MEASURED, cap, "evaluate-photos", folder, "--threads", "1", "--out", tmp_path / "many",
                        env=env)
    assert many.returncode == 0, many.stderr[-2000:]
    assert "top-1 on 1000 photos" in many.stdout
    assert len(list((tmp_path / "many").glob("contact_sheet*.png"))) == 1000 // 12 + 1


def run_cli_code(code: str, *args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


# --- closed and full outputs ---------------------------------------------------------------------


def test_a_closed_stdout_ends_quietly_with_130(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos")
    result = run_cli("evaluate-photos", folder, "--no-plots", stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    assert result.returncode == 130, result.stderr
    assert result.stderr == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_a_full_stdout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos")
    with open("/dev/full", "w") as full:
        result = run_cli("evaluate-photos", folder, "--no-plots", stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write to standard output (No space left on device)\n"


def test_with_stderr_closed_the_figures_are_still_printed(tmp_path: Path) -> None:
    folder = two_photos(tmp_path / "photos", "gone.jpg,3\n")  # an error line, with nowhere to go
    result = run_cli("evaluate-photos", folder, "--no-plots", stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2))
    assert result.returncode == 1
    assert "top-1 on 2 photos" in result.stdout


def handles_sigterm(pid: int) -> bool:
    """Whether the process has set its own SIGTERM handler yet (Linux: the SigCgt mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to see the handlers set")
def test_sigterm_stops_it_at_once_with_130_and_leaves_no_half_written_report(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = ["file,label"] + [f"{garment(folder / f'g{i:03d}.png').name},{i % 10}" for i in range(600)]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "fmnist_edge", "evaluate-photos", str(folder), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not handles_sigterm(proc.pid):
        pass
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr == "interrupted\n" and stdout == ""
    assert not out.exists() or not any(p.name.endswith(".tmp.png") for p in out.iterdir())
