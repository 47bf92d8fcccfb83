"""classify at the edges of its input and output: globs over folders that link back to themselves,
a stop during the walk, a photo down a pipe, and standard streams that are closed or full.

Streams, pipes and signals are process matters, so those tests run the real command in a process.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import garment

from fmnist_edge.classify import run_classify
from fmnist_edge.inputs import expand
from fmnist_edge.output import Lines
from fmnist_edge.walk import WalkStopped, glob_paths

PHOTO = Path(__file__).resolve().parent / "data" / "photos" / "0_tshirt_top_08.jpg"


def start(*args: object, **streams: object) -> subprocess.Popen:
    """`fmnist-edge classify ARGS` in its own process; stdout and stderr are pipes unless `streams` say."""
    return subprocess.Popen([sys.executable, "-m", "fmnist_edge", "classify", *map(str, args)], text=True,
                            **({"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | streams))


def answers(stdout: str) -> list[str]:
    """The path column of each answer row of the table."""
    return [row.split("  ")[-1] for row in stdout.splitlines()[1:]]


# --- walks -------------------------------------------------------------------------------------------


@pytest.fixture
def looped(tmp_path: Path) -> Path:
    """root/{top.png, a/{self -> ., b/{deep.png, up -> ../.., .hidden/h.png}}, alias -> a}: links to
    itself, to an ancestor and to a sibling."""
    root = tmp_path / "root"
    (root / "a" / "b" / ".hidden").mkdir(parents=True)
    garment(root / "top.png")
    garment(root / "a" / "b" / "deep.png")
    garment(root / "a" / "b" / ".hidden" / "h.png")
    (root / "a" / "self").symlink_to(".")
    (root / "a" / "b" / "up").symlink_to("../..")
    (root / "alias").symlink_to("a")
    return root


def test_a_double_star_glob_over_links_back_lists_each_image_once_and_ends(looped: Path) -> None:
    proc = start(looped / "**" / "*.png")
    out, err = proc.communicate(timeout=120)  # a guard against the old endless walk, not a timing
    assert proc.returncode == 0, err
    found = answers(out)
    assert len(found) == len(set(found)) == 2
    assert {Path(p).name for p in found} == {"top.png", "deep.png"}


@pytest.mark.parametrize("pattern", ["*.png", "**/*.png", "**", "a/**", "*/b/*", "[at]*", "**/.hidden/*",
                                     "a/b/deep.png", "**/b", "*/*/d*.png", "a//b/*"])
def test_the_walk_matches_what_glob_matches_where_nothing_links_back(pattern: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "a" / "b" / ".hidden").mkdir(parents=True)
    for name in ("top.png", "a/x.png", "a/b/deep.png", "a/b/.hidden/h.png", "a/b/.dot.png"):
        garment(root / name)
    monkeypatch.chdir(root)
    for spelled in (pattern, str(root / pattern)):  # relative and absolute
        expected = {os.path.normpath(p) for p in glob.glob(spelled, recursive=True)}  # a//b: a/b, a/: a
        found = glob_paths(spelled, stopped=lambda: False)
        assert len(found) == len(set(found)) and {os.path.normpath(p) for p in found} == expected, spelled


def test_the_walk_asks_to_stop_as_it_goes_and_stops(looped: Path) -> None:
    asked = 0

    def stopped_after_three() -> bool:
        nonlocal asked
        asked += 1
        return asked > 3

    with pytest.raises(WalkStopped):
        expand([str(looped / "**" / "*.png")], stopped=stopped_after_three)
    with pytest.raises(WalkStopped):
        expand([str(looped / "a" / "b")], stopped=lambda: True)  # a plain folder too


def test_a_stop_during_the_walk_ends_classify_with_one_line(looped: Path, capsys: pytest.CaptureFixture) -> None:
    class StopOnTheFifthCheck:  # stands in for StopOnSignals, whose signal came mid-walk
        checks = 0

        @property
        def requested(self) -> str | None:
            self.checks += 1
            return "SIGTERM" if self.checks >= 5 else None

    outcome = run_classify([str(looped / "**" / "*.png")], lines=Lines(), stop=StopOnTheFifthCheck())
    assert outcome.stopped == "SIGTERM"
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == "interrupted (SIGTERM): stopped while listing the inputs"
    assert "top.png" not in captured.out


# --- pipes ---------------------------------------------------------------------------------------------


def piped(*args: object, data: bytes) -> subprocess.CompletedProcess:
    """`... | fmnist-edge classify ARGS`, `data` being what comes down the pipe."""
    return subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", *map(str, args)], input=data,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_a_photo_down_a_pipe_gets_the_answer_the_file_gets(name: str) -> None:
    from_file = start(PHOTO).communicate(timeout=120)[0]
    result = piped(name, data=PHOTO.read_bytes())
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.splitlines()[1].split("  ")[:-1] == from_file.splitlines()[1].split("  ")[:-1]
    assert answers(out) == [name]


def test_more_than_the_cap_from_a_pipe_is_one_error_line() -> None:
    result = piped("-", data=bytes(65 << 20))
    assert result.returncode == 1
    assert result.stderr == b"error: -: more than 64 MiB from a pipe; save it to a file to classify it\n"


def test_a_named_pipe_nobody_writes_to_is_an_empty_input_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "camera")
    proc = start(tmp_path / "camera")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err == f"error: {tmp_path / 'camera'}: empty input (0 bytes)\n"


def test_a_signal_ends_a_wait_on_a_silent_pipe_after_the_answers_before_it(tmp_path: Path) -> None:
    proc = start(PHOTO, "-", stdin=subprocess.PIPE)  # the writer never writes, never closes
    header, first = proc.stdout.readline(), proc.stdout.readline()  # PHOTO's answer: printed before the wait
    assert first.rstrip().endswith(str(PHOTO)), header + first
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == "interrupted\n" and rest == ""


# --- closed and full streams ----------------------------------------------------------------------


def test_with_stderr_closed_every_answer_is_still_printed() -> None:
    proc = start("/nonexistent.png", PHOTO, PHOTO, stderr=None, preexec_fn=lambda: os.close(2))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1  # the missing file's line had nowhere to go; it still counts
    assert answers(out) == [str(PHOTO), str(PHOTO)]


@pytest.mark.parametrize("route", [[], ["--json"]], ids=["plain-route", "parsed-route"])
def test_with_stdout_closed_it_ends_quietly_with_130(route: list[str]) -> None:
    proc = start(*route, PHOTO, stdout=None, preexec_fn=lambda: os.close(1))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
@pytest.mark.parametrize("route", [[], ["--json"]], ids=["plain-route", "parsed-route"])
def test_a_full_stdout_is_one_line_and_exit_2(route: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = start(*route, PHOTO, stdout=full)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err == "error: cannot write to standard output (No space left on device)\n"
