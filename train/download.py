"""The one downloader: a file from a mirror, bounded in size and time, published only once verified.

Why one: the Fashion-MNIST files and the training photos both come from mirrors a user may
override ($FMNIST_EDGE_MIRROR, $FMNIST_EDGE_PHOTOS_MIRROR), so both must survive the same hostile
or broken server: a 10 GB body, a connection cut mid-file, wrong bytes, or a server that sends one
byte every few seconds forever. A socket timeout alone does not stop the last one, because it
bounds each read and the drip answers every read in time; so each file also has a deadline, and a
watchdog thread shuts the connection down when it passes.

http.client rather than urllib.request: the watchdog needs the connection's socket from the moment
it exists (a drip can start in the TLS handshake or the headers), and urllib hides it. What urllib
gave for free is kept: redirects, and the proxy named by $http_proxy/$https_proxy/$no_proxy.

Nothing here imports TensorFlow, so `fetch-photos` and `data` start fast.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.common.errors import DataError
from fmnist_edge.runtime.manifest import sha256_file
from fmnist_edge.runtime.version import VERSION

TIMEOUT = 30.0  # seconds for the connection, and for each read: a silent server fails this fast
MAX_REDIRECTS = 5
CHUNK = 1 << 16
USER_AGENT = f"fmnist-edge/{VERSION}"  # names us in the mirror's logs, as its operator may ask

Progress = Callable[[int, int | None], None]  # (bytes so far, the Content-Length if given)


def download(
    url: str,
    target: Path,
    *,
    sha256: str,
    max_bytes: int,
    deadline: float,
    timeout: float = TIMEOUT,
    digest: Callable[[Path], str] = sha256_file,
    progress: Progress | None = None,
) -> None:
    """Fetch `url` into `target`, which gets its name only if `digest` of the bytes equals `sha256`.

    `max_bytes` caps the body, `deadline` (seconds) the whole transfer from connecting to the last
    byte, and `timeout` the connection and each read. `digest` says what the hash is of: the file by
    default; the Fashion-MNIST files are pinned by their decompressed content. It may raise
    ValueError or OSError for a file it cannot read. Any failure is a DataError of one line naming
    the URL and the cause, and leaves nothing at `target` (an older file there stays as it was).
    Ctrl-C (KeyboardInterrupt) propagates at once, also leaving nothing behind.
    """
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise DataError(f"could not download {url!r}: a URL has no spaces or control characters")
    late = f"did not finish within its {deadline:g} s deadline"
    expired = threading.Event()
    connection: list[http.client.HTTPConnection] = []

    def cut() -> None:
        # Runs in the watchdog thread: a shutdown through a second handle to the socket wakes the
        # read blocked on the first (closing it would not), and never touches the TLS layer's state.
        expired.set()
        sock = connection[-1].sock if connection else None
        if sock is not None:
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(sock.fileno())) as handle:
                handle.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        with atomic_path(target) as tmp:
            response, expected = _open(url, timeout, connection)
            size = _save(response, expected, tmp, max_bytes, expired, progress)
            if expired.is_set():  # the watchdog cut the connection: what arrived is incomplete
                raise _Failure(late)
            watchdog.cancel()  # the transfer is done; hashing a large file may take a while
            if expected is not None and size != expected:
                raise _Failure(f"the connection closed after {size} of {expected} bytes")
            try:
                got = digest(tmp)
            except (OSError, ValueError) as exc:
                raise _Failure(f"the file is unusable ({exc}); not saved") from None
            if got != sha256:
                raise _Failure(f"its sha256 is {got[:12]}…, expected {sha256[:12]}…; not saved")
    except _Failure as exc:
        raise DataError(f"could not download {url}: {exc}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: e.g. IncompleteRead when a chunked body ends early; OSError covers resets,
        # refusals, DNS failures, a full disk and the watchdog's shutdown; ValueError a malformed
        # address (a port that is not a number, a control character).
        cause = late if expired.is_set() else _describe(exc)
        raise DataError(f"could not download {url}: {cause}") from None
    finally:
        watchdog.cancel()
        watchdog.join()  # so cut() never runs on a socket closed (and its number reused) below
        for conn in connection:
            conn.close()


class _Failure(Exception):
    """A cause, worded for the user, that download() prefixes with the URL."""


def _open(
    url: str, timeout: float, connection: list[http.client.HTTPConnection]
) -> tuple[http.client.HTTPResponse, int | None]:
    """Send the GET; return the response after any redirects and its Content-Length, if it gave one."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Failure("only http:// and https:// addresses can be downloaded")
        conn, path, headers = _connection(parts, timeout)
        connection.append(conn)  # before connecting: the watchdog may need to cut the handshake
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        location = response.getheader("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            url = urllib.parse.urljoin(url, location)
            continue
        if response.status != 200:
            raise _Failure(f"HTTP {response.status} {_printable(response.reason)}")
        length = (response.getheader("Content-Length") or "").strip()
        return response, int(length) if length.isdecimal() else None
    raise _Failure(f"more than {MAX_REDIRECTS} redirects")


def _connection(
    parts: urllib.parse.SplitResult, timeout: float
) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """The connection for `parts`, through the environment's proxy unless $no_proxy exempts the host."""
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    https = parts.scheme == "https"
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return cls(parts.hostname or "", parts.port, timeout=timeout), path, {}
    via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    auth = {}
    if via.username:
        pair = f"{urllib.parse.unquote(via.username)}:{urllib.parse.unquote(via.password or '')}"
        auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    conn = cls(via.hostname or "", via.port, timeout=timeout)
    if https:  # a CONNECT tunnel: the proxy sees only the host name, TLS runs end to end
        conn.set_tunnel(parts.hostname or "", parts.port, headers=auth)
        return conn, path, {}
    return conn, urllib.parse.urlunsplit(parts), auth  # plain HTTP: the proxy is asked for the full URL


def _save(
    response: http.client.HTTPResponse,
    expected: int | None,
    tmp: Path,
    max_bytes: int,
    expired: threading.Event,
    progress: Progress | None,
) -> int:
    """Stream the body into `tmp`, refusing it as soon as it is known to exceed `max_bytes`."""
    if expected is not None and expected > max_bytes:
        raise _Failure(f"it is {expected} bytes, over the {max_bytes}-byte cap; not saved")
    size = 0
    with tmp.open("wb") as out:
        # read1: at most one socket read per call, so the deadline is looked at between reads
        # (read(n) would wait for n bytes, however slowly they come).
        while not expired.is_set() and (chunk := response.read1(CHUNK)):
            size += len(chunk)
            if size > max_bytes:
                raise _Failure(f"it is over the {max_bytes}-byte cap; not saved")
            out.write(chunk)
            if progress is not None:
                progress(size, expected)
    return size


def _printable(text: str) -> str:
    """Server-chosen text (the reason phrase) with control characters escaped: an escape sequence
    must not reach the user's terminal, nor a newline forge a second line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text[:200])


def _describe(exc: BaseException) -> str:
    """The cause of a network error in a few words (socket errors carry theirs in strerror)."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial)} bytes of a chunk"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

