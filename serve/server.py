"""Run the app on uvicorn: bind, say where to open it, serve until SIGTERM or Ctrl-C, drain, exit.

The socket is bound here, before uvicorn starts, so that a port in use is one line and exit 2 like
any other bad option (uvicorn would log it and exit 1), and so that `--port 0` can print the port
the system chose. Shutdown is uvicorn's: stop accepting, let the requests in hand finish for up to
GRACE seconds, close. uvicorn then raises the signal again so that the process dies of it; here it
lands on interrupt.StopOnSignals, and the command exits 130, the code every command of ours gives
when a signal stops it (a systemd unit declares it with SuccessExitStatus=130).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.interrupt import EXIT_INTERRUPTED, StopOnSignals
from fmnist_edge.runtime.errors import UsageError

GRACE = 3.0  # seconds that requests in hand get to finish after a stop: the process is gone within 5 s
EXIT_OK = 0  # a server stops only on a signal, so this is never returned in practice


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    model: Path | None
    backend: str | None
    workers: int
    queue: int
    timeout: float
    max_body: int
    save_input: Path | None
    access_log: bool


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a UsageError saying why not (in use, no such address)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP by name, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it each answer's body waited 40 ms for the client's delayed ACK of its headers.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {host}: not an address this machine has ({getattr(exc, 'strerror', None) or exc})") \
            from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock


def phone_address(host: str, port: int) -> str | None:
    """The URL a phone on the same network opens, when the server listens on every address: the
    address of the interface that routes outwards (a UDP connect sends nothing), else None."""
    if host not in ("0.0.0.0", "::", ""):
        return None
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never contacted, it only selects a route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else f"http://{address}:{port}/"


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
        f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _say(text: str) -> None:
    print(text, flush=True)


def serve(options: Options, say: Callable[[str], object] = _say) -> int:
    """Load the model, serve until a signal, and return the exit code (130 after a signal)."""
    import uvicorn

    from fmnist_edge.save_input import InputSaver
    from fmnist_edge.serve.app import Limits, create_app
    from fmnist_edge.serve.pool import ModelPool

    with StopOnSignals() as stop:
        try:
            saver = None
            if options.save_input is not None:
                saver = InputSaver(options.save_input)
                saver.create()
            sock = bind(options.host, options.port)
            pool = ModelPool(options.model, options.backend, options.workers, options.queue)
            app = create_app(pool, Limits(options.max_body, options.timeout), saver)
            if stop.requested:
                return EXIT_INTERRUPTED
            port = sock.getsockname()[1]
            classifier = pool.first
            say(f"serving {classifier.path.name} on {classifier.backend.name} ({pool.workers} worker(s), "
                f"{pool.capacity - pool.workers} more may wait) at {url(options.host, port)}")
            phone = phone_address(options.host, port)
            if phone is not None:
                say(f"on a phone on the same network, open {phone}")
            level = "info" if options.access_log else "warning"
            config = uvicorn.Config(app, lifespan="off", ws="none", timeout_graceful_shutdown=GRACE,
                                    access_log=options.access_log, log_level=level)
            uvicorn.Server(config).run(sockets=[sock])
            pool.close()
        except KeyboardInterrupt:  # a second signal while uvicorn hands the first one back
            return EXIT_INTERRUPTED
    return EXIT_INTERRUPTED if stop.requested else EXIT_OK
