"""A real `fmnist-edge serve` process on a port the system picks, and a plain HTTP client for it.

The server is started as a user starts it, as its own process: what the tests see is what a phone
sees, uvicorn, signals and exit codes included. Its output goes to files, not pipes, so that a
chatty access log can never fill a pipe and stall it.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0  # seconds: generous, for a loaded CI machine; a start takes about 1 s here


@dataclass
class Server:
    process: subprocess.Popen
    host: str
    port: int
    stdout: Path
    stderr: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict]:
        """One request on a new connection: (status, headers with lower-case names, the JSON body)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw)
        finally:
            connection.close()

    def post_image(self, data: bytes, path: str = "/classify") -> tuple[int, dict[str, str], dict]:
        return self.request("POST", path, data, {"Content-Type": "application/octet-stream"})

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


@contextmanager
def running_server(tmp_path: Path, *options: str) -> Iterator[Server]:
    """`fmnist-edge serve --port 0 OPTIONS`, until the block ends (then SIGTERM, then kill if need be)."""
    stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "fmnist_edge", "serve", "--port", "0", *options],
                                   stdout=out, stderr=err)
    try:
        server = Server(process, *_address(process, stdout, stderr), stdout, stderr)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _address(process: subprocess.Popen, stdout: Path, stderr: Path) -> tuple[str, int]:
    """(host, port) from the line serve prints once it listens."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r"at http://([\d.]+):(\d+)/", stdout.read_text())
        if found:
            return found.group(1), int(found.group(2))
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}: {stderr.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"serve did not start within {START_TIMEOUT} s: {stderr.read_text()}")
