"""Fashion-MNIST data layer and `fmnist-edge data`: finding, verifying and downloading the four files.

The tests use the real files from Debian's dataset-fashion-mnist, and the download tests use a real
HTTP server on 127.0.0.1. Damaged copies are made from the real files, so the checksums are what
rejects them.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers import FileServer, Quiet
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.common.errors import DataError
from fmnist_edge.runtime.spec import CLASS_NAMES
from fmnist_edge.train import data

DEBIAN = data.SYSTEM_DIR  # kept here: some tests point data.SYSTEM_DIR elsewhere
SMALL = "t10k-labels-idx1-ubyte.gz"  # 5 KB: the one we damage, so the damage itself costs nothing
NAMES = sorted(spec.name for spec in data.FILES.values())

pytestmark = pytest.mark.skipif(
    not all((DEBIAN / name).is_file() for name in NAMES),
    reason=f"needs {DEBIAN}: apt-get install dataset-fashion-mnist",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Give every test an empty cache and no overrides, so results don't depend on the machine.

    The mirror points at a closed local port: if a test downloads by mistake, it fails at once and
    never reaches the internet.
    """
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(data.ENV_MIRROR, "http://127.0.0.1:9/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """Where the user cache is under the empty XDG_CACHE_HOME that clean_env sets (not yet created)."""
    return tmp_path / "xdg-cache" / "fmnist-edge"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the four official files, which the tests may damage."""
    target = tmp_path / "copy"
    target.mkdir()
    for name in NAMES:
        shutil.copy(DEBIAN / name, target / name)
    return target


@pytest.fixture
def no_system_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make the Debian copy look absent, as on a machine without the package, so locate() downloads."""
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "not-installed")


class Hung(Exception):
    """Not an OSError, so data.py can't turn it into a DataError and hide the hang."""


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail a server test that runs longer than 60 s instead of letting a stuck socket hang CI."""

    def expire(signum: int, frame: object) -> None:
        raise Hung("test exceeded 60 s; a socket is probably stuck")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class HangsUpHalfway(Quiet, BaseHTTPRequestHandler):
    """Promises the whole file in Content-Length, sends half of it, then drops the connection."""

    def do_GET(self) -> None:
        body = (DEBIAN / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


class HangsUpMidChunk(Quiet, BaseHTTPRequestHandler):
    """The same failure with chunked encoding (no Content-Length), as some proxies send it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"400\r\n" + b"\0" * 0x400 + b"\r\n")  # one chunk, then no final 0-chunk
        self.close_connection = True


class ServesWrongBytes(Quiet, BaseHTTPRequestHandler):
    """A complete, well-formed gzip response whose content is not Fashion-MNIST."""

    def do_GET(self) -> None:
        body = gzip.compress(b"\0\0\x08\x01" + b"\0" * 1000)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ServesTruncatedGzip(Quiet, BaseHTTPRequestHandler):
    """A download that completes (Content-Length kept) of a file that was itself cut short."""

    def do_GET(self) -> None:
        whole = (DEBIAN / SMALL).read_bytes()
        body = whole[: len(whole) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], directory: Path | None = None) -> Iterator[str]:
    """Run `handler` on an ephemeral 127.0.0.1 port in a thread and yield the base URL."""
    factory = handler if directory is None else partial(handler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def rewrite_gzip(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes()))))


# --- Finding the files -------------------------------------------------------------------------


def test_debian_copy_is_found_and_complete() -> None:
    # A user on Debian with `apt install dataset-fashion-mnist`, nothing configured, empty cache.
    ds = data.load()

    assert ds.source == DEBIAN
    assert ds.train_images.shape == (60000, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (10000, 28, 28) and ds.test_images.dtype == np.uint8
    assert ds.train_labels.shape == (60000,) and ds.test_labels.shape == (10000,)
    # Fashion-MNIST is balanced; any other count means the wrong labels or a misparsed header.
    assert np.bincount(ds.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels, minlength=10).tolist() == [1000] * 10


def test_data_dir_argument_is_used(copy: Path) -> None:
    ds = data.load(copy)

    assert ds.source == copy
    assert ds.test_labels.shape == (10000,)


def test_data_dir_env_var_is_used(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_DATA_DIR, str(copy))

    assert data.locate() == copy


def test_complete_cache_is_preferred_over_system_copy(copy: Path, cache: Path) -> None:
    shutil.copytree(copy, cache)

    assert data.locate() == cache


@pytest.mark.parametrize("via", ["argument", "env"])
def test_explicit_dir_missing_a_file_fails_instead_of_falling_back(
    via: str, copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Debian copy is complete, so quietly using it would "work" but ignore what the user asked.
    (copy / SMALL).unlink()
    if via == "env":
        monkeypatch.setenv(data.ENV_DATA_DIR, str(copy))

    with pytest.raises(DataError) as err:
        data.load(copy if via == "argument" else None)

    assert SMALL in str(err.value)
    assert "train-images-idx3-ubyte.gz" not in str(err.value)  # names only what is missing


# --- Damaged files ----------------------------------------------------------------------------


def test_changed_label_fails_checksum(copy: Path) -> None:
    # A still-valid gzip and IDX file with one label changed: only the checksum can catch it.
    def change_first_label(raw: bytes) -> bytes:
        return raw[:8] + bytes([(raw[8] + 1) % 10]) + raw[9:]

    rewrite_gzip(copy / SMALL, change_first_label)

    with pytest.raises(DataError) as err:
        data.load(copy)

    message = str(err.value)
    assert SMALL in message and "wrong content" in message
    assert "delete it and fetch it again" in message


def test_truncated_gzip_is_reported(copy: Path) -> None:
    damaged = copy / SMALL
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])

    with pytest.raises(DataError) as err:
        data.load(copy)

    assert SMALL in str(err.value) and "truncated" in str(err.value)
    assert "delete it and fetch it again" in str(err.value)


# --- Downloading ------------------------------------------------------------------------------


@pytest.mark.usefixtures("deadline", "no_system_copy")
def test_download_into_cache_then_reuse_it(copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[str] = []
    handler = type("RecordingFileServer", (FileServer,), {"requests": requests})
    with serve(handler, copy) as url:
        monkeypatch.setenv(data.ENV_MIRROR, url)

        ds = data.load()
        assert ds.source == cache
        assert sorted(p.name for p in cache.iterdir()) == NAMES  # and no temp files
        assert np.bincount(ds.test_labels).tolist() == [1000] * 10

        # The second run finds the cache and never touches the network.
        assert data.locate() == cache
    assert sorted(requests) == NAMES


@pytest.mark.usefixtures("deadline")
def test_download_fetches_only_missing_files(copy: Path, tmp_path: Path) -> None:
    # An earlier run that got three of the four files: only the fourth is fetched.
    target = tmp_path / "partial"
    target.mkdir()
    for name in NAMES:
        if name != SMALL:
            (target / name).symlink_to(copy / name)
    requests: list[str] = []
    handler = type("RecordingFileServer", (FileServer,), {"requests": requests})

    with serve(handler, copy) as url:
        assert data.download_all(target, mirror=url) == target

    assert requests == [SMALL]
    assert data.load(target).source == target


@pytest.mark.usefixtures("deadline")
@pytest.mark.parametrize("handler", [HangsUpHalfway, HangsUpMidChunk, ServesWrongBytes, ServesTruncatedGzip])
def test_failed_download_leaves_no_file(handler: type[BaseHTTPRequestHandler], tmp_path: Path) -> None:
    # A file under its real name would be trusted by the next run, and a stray temp file is litter.
    target = tmp_path / "cache"

    with serve(handler) as url, pytest.raises(DataError) as err:
        data.download_all(target, mirror=url)

    assert "train-images-idx3-ubyte.gz" in str(err.value)  # the first file fetched
    assert list(target.iterdir()) == []


@pytest.mark.usefixtures("deadline")
def test_missing_file_on_mirror_is_a_data_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    target = tmp_path / "cache"
    handler = type("RecordingFileServer", (FileServer,), {"requests": []})

    with serve(handler, empty) as url, pytest.raises(DataError) as err:
        data.download_all(target, mirror=url)

    assert "404" in str(err.value) and "train-images-idx3-ubyte.gz" in str(err.value)
    assert list(target.iterdir()) == []


# --- `fmnist-edge data` -----------------------------------------------------------------------


def test_cli_data_reports_source_and_class_counts() -> None:
    result = CliRunner().invoke(app, ["data"])

    assert result.exit_code == 0, result.output
    assert str(DEBIAN) in result.stdout
    rows = {
        name: line.split()[-2:]
        for line in result.stdout.splitlines()
        for name in CLASS_NAMES
        if line.strip().startswith(name + " ")
    }
    assert rows == {name: ["6000", "1000"] for name in CLASS_NAMES}


def test_cli_data_with_empty_dir_prints_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "--data-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0]
    assert "Traceback" not in result.output


def test_cli_data_help_names_the_mirror_variable_and_exit_codes() -> None:
    result = CliRunner().invoke(app, ["data", "--help"], terminal_width=200)

    text = " ".join(result.stdout.split())
    assert result.exit_code == 0
    for fact in (data.ENV_MIRROR, data.ENV_DATA_DIR, "SHA-256", "Exit codes: 0", "130 interrupted"):
        assert fact in text


def test_cli_data_ctrl_c_is_exit_130_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(data_dir: Path | None = None, download: bool = True) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "load", interrupted)

    result = CliRunner().invoke(app, ["data"])

    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr.strip().startswith("interrupted") and "Traceback" not in result.output
