"""The one downloader against a real HTTP server on 127.0.0.1 that misbehaves in every way a mirror can.

Each failure must be one DataError line naming the URL and its cause, and leave nothing under the
final name (nor a temp file beside it), because the next run trusts a file that has its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from fmnist_edge.common.errors import DataError
from fmnist_edge.runtime.version import VERSION
from fmnist_edge.train.download import download

BODY = bytes(range(256)) * 200  # 51,200 bytes: several reads, so "partway" means something
SHA = hashlib.sha256(BODY).hexdigest()
DRIP_SECONDS = 0.5


class Mirror(BaseHTTPRequestHandler):
    """One route per way a mirror can fail; `seen` records (path as requested, User-Agent)."""

    seen: ClassVar[list[tuple[str, str]]] = []
    timeout = 30  # a handler left waiting on a client gives up instead of keeping the server busy

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the request log out of the test output

    def do_GET(self) -> None:
        Mirror.seen.append((self.path, self.headers.get("User-Agent", "")))
        route = urllib.parse.urlsplit(self.path).path  # a proxy is asked for the full URL
        handler = getattr(self, "route_" + route.strip("/").replace("-", "_"), None)
        if handler is None:
            self.send_error(404)
            return
        # The client hanging up is how a drip ends, and how a refused body should end.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler()

    def head(self, length: int | None = len(BODY), status: int = 200, **headers: str) -> None:
        self.send_response(status)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def route_good(self) -> None:
        self.head()
        self.wfile.write(BODY)

    def route_truncated(self) -> None:  # promises the whole file, sends half, hangs up
        self.head()
        self.wfile.write(BODY[: len(BODY) // 2])

    def route_chunk_cut(self) -> None:  # the same with chunked encoding: no final 0-chunk
        self.protocol_version = "HTTP/1.1"
        self.head(None, Transfer_Encoding="chunked")
        self.wfile.write(b"400\r\n" + BODY[:0x400] + b"\r\n")
        self.close_connection = True

    def route_huge(self) -> None:  # announces 10 GB
        self.head(10 << 30)
        self.wfile.write(BODY)

    def route_unannounced(self) -> None:  # no Content-Length: the body ends when the connection does
        self.head(None)
        self.wfile.write(BODY + b"and more")

    def route_drip(self) -> None:  # headers at once, then one byte every DRIP_SECONDS
        self.head()
        for i in range(len(BODY)):
            self.wfile.write(BODY[i : i + 1])
            self.wfile.flush()
            time.sleep(DRIP_SECONDS)

    def route_drip_headers(self) -> None:  # never even finishes its headers
        self.wfile.write(b"HTTP/1.0 200 OK\r\n")
        for _ in range(1000):
            self.wfile.write(b"X")
            self.wfile.flush()
            time.sleep(DRIP_SECONDS)

    def route_silent(self) -> None:  # accepts the request and says nothing
        time.sleep(5)

    def route_forged(self) -> None:  # a reason phrase that would clear the screen and start a new line
        self.send_response(418, "\x1b[2J\rok: file saved")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_moved(self) -> None:
        self.head(0, status=302, Location="/good")

    def route_loop(self) -> None:
        self.head(0, status=302, Location="/loop")


@pytest.fixture(autouse=True)
def no_proxy_no_hang(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy from the machine's environment between us and 127.0.0.1, and no test over 60 s."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("test exceeded 60 s: a download is hanging")  # an OSError: turned into a
        # DataError it would still fail the test, whose checks name the cause they expect

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def mirror() -> Iterator[str]:
    """The misbehaving mirror on a free port, in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    server.block_on_close = False  # a drip still sleeping must not hold up the teardown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, target: Path, **options: object) -> None:
    settings: dict[str, object] = {"sha256": SHA, "max_bytes": len(BODY), "deadline": 30.0, **options}
    download(url, target, **settings)  # type: ignore[arg-type]


def fails(url: str, target: Path, **options: object) -> str:
    """The DataError's message, after checking it is one line about `url` and nothing was left."""
    with pytest.raises(DataError) as err:
        fetch(url, target, **options)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"could not download {url}: ")
    assert list(target.parent.iterdir()) == []  # no file under its name, no temp file beside it
    return message


def test_a_good_file_takes_its_name_and_says_who_asked(mirror: str, tmp_path: Path) -> None:
    Mirror.seen.clear()
    progress: list[tuple[int, int | None]] = []

    fetch(f"{mirror}/good", tmp_path / "file.gz", progress=lambda done, total: progress.append((done, total)))

    assert (tmp_path / "file.gz").read_bytes() == BODY
    assert list(tmp_path.iterdir()) == [tmp_path / "file.gz"]
    assert Mirror.seen == [("/good", f"fmnist-edge/{VERSION}")]  # a mirror's operator can tell who we are
    assert progress[-1] == (len(BODY), len(BODY))


def test_redirects_are_followed(mirror: str, tmp_path: Path) -> None:
    fetch(f"{mirror}/moved", tmp_path / "file")

    assert (tmp_path / "file").read_bytes() == BODY


def test_a_wrong_hash_is_refused(mirror: str, tmp_path: Path) -> None:
    message = fails(f"{mirror}/good", tmp_path / "file", sha256="0" * 64)

    assert f"sha256 is {SHA[:12]}" in message and "not saved" in message


def test_the_digest_can_be_of_the_content(mirror: str, tmp_path: Path) -> None:
    # The Fashion-MNIST files are pinned by their decompressed bytes: the caller says what is hashed.
    fetch(f"{mirror}/good", tmp_path / "file", sha256=hashlib.sha256(BODY[:10]).hexdigest(),
          digest=lambda path: hashlib.sha256(path.read_bytes()[:10]).hexdigest())

    assert (tmp_path / "file").read_bytes() == BODY


def test_a_digest_that_cannot_read_the_file_is_one_line(mirror: str, tmp_path: Path) -> None:
    def not_gzip(path: Path) -> str:
        raise ValueError("not a gzip file")

    assert "unusable (not a gzip file)" in fails(f"{mirror}/good", tmp_path / "file", digest=not_gzip)


@pytest.mark.parametrize("route", ["truncated", "chunk-cut"])
def test_a_body_cut_short_is_refused(route: str, mirror: str, tmp_path: Path) -> None:
    message = fails(f"{mirror}/{route}", tmp_path / "file")

    assert "connection closed after" in message


@pytest.mark.parametrize("route", ["huge", "unannounced"])
def test_a_body_over_the_cap_is_refused(route: str, mirror: str, tmp_path: Path) -> None:
    # "huge" is refused from its Content-Length before a byte is read; "unannounced" while streaming.
    message = fails(f"{mirror}/{route}", tmp_path / "file")

    assert f"over the {len(BODY)}-byte cap" in message


@pytest.mark.parametrize("route", ["drip", "drip-headers"])
def test_a_slow_drip_fails_at_its_deadline(route: str, mirror: str, tmp_path: Path) -> None:
    # Every read gets its byte within the 10 s timeout, so only the deadline can end this.
    started = time.monotonic()

    message = fails(f"{mirror}/{route}", tmp_path / "file", deadline=2.0, timeout=10.0)

    assert "did not finish within its 2 s deadline" in message
    assert time.monotonic() - started < 30  # generous: the drip itself would take 7 hours


def test_a_silent_server_times_out(mirror: str, tmp_path: Path) -> None:
    assert "timed out" in fails(f"{mirror}/silent", tmp_path / "file", timeout=0.5)


@pytest.mark.parametrize(("route", "cause"), [("missing", "HTTP 404"), ("loop", "more than 5 redirects")])
def test_refusals_name_their_cause(route: str, cause: str, mirror: str, tmp_path: Path) -> None:
    assert cause in fails(f"{mirror}/{route}", tmp_path / "file")


def test_a_servers_words_are_escaped_before_they_are_printed(mirror: str, tmp_path: Path) -> None:
    message = fails(f"{mirror}/forged", tmp_path / "file")

    assert "HTTP 418 \\x1b[2J\\rok: file saved" in message and "\x1b" not in message and "\r" not in message


@pytest.mark.parametrize(("url", "cause"), [
    ("http://127.0.0.1:9/file", "refused"),  # the discard port: nothing listens there
    ("ftp://example.invalid/file", "only http:// and https://"),
    ("http://127.0.0.1:port/file", "port"),
])
def test_unreachable_or_malformed_addresses_are_one_line(url: str, cause: str, tmp_path: Path) -> None:
    assert cause in fails(url, tmp_path / "file").lower()


def test_an_address_with_a_newline_is_refused_before_any_request(tmp_path: Path) -> None:
    # From a mirror variable pasted with its newline: printed as is, it would split the error line.
    with pytest.raises(DataError) as err:
        fetch("http://127.0.0.1:9/file\nerror: forged", tmp_path / "file")

    assert "\n" not in str(err.value) and "no spaces or control characters" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_leaves_an_older_file_as_it_was(mirror: str, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"the copy from last week")

    with pytest.raises(DataError):
        fetch(f"{mirror}/truncated", target)

    assert target.read_bytes() == b"the copy from last week"
    assert list(tmp_path.iterdir()) == [target]


def test_ctrl_c_stops_a_download_and_leaves_nothing(mirror: str, tmp_path: Path) -> None:
    # A real SIGINT, sent while the drip keeps the download waiting on the socket.
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        fetch(f"{mirror}/drip", tmp_path / "file")

    assert list(tmp_path.iterdir()) == []


def test_the_environments_proxy_is_used(mirror: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Behind a proxy, as urllib did before: the proxy (here the mirror itself) is asked for the full URL.
    monkeypatch.setenv("http_proxy", mirror)
    Mirror.seen.clear()

    fetch("http://mirror.invalid/good", tmp_path / "file")

    assert (tmp_path / "file").read_bytes() == BODY
    assert [path for path, _ in Mirror.seen] == ["http://mirror.invalid/good"]
