"""Helpers several test files share: a CLI runner that surfaces real crashes, a dataset-like image,
and the pieces of the local HTTP servers that stand in for download mirrors."""

from __future__ import annotations

from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner, Result

from fmnist_edge.app import app


def invoke(*args: object) -> Result:
    """Run `fmnist-edge ARGS`; an exception other than the command's own exit is re-raised, so a
    traceback fails the test instead of hiding in the result."""
    result = CliRunner().invoke(app, [*map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def garment(path: Path) -> Path:
    """A 28x28 dataset-like image (a light block on black) at `path`."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:23, 8:20] = 200
    Image.fromarray(pixels).save(path)
    return path


class Quiet:
    """Mixin: keep the server's request log out of the test output."""

    timeout = 10  # seconds: a handler waiting on a silent client gives up instead of hanging

    def log_message(self, format: str, *args: object) -> None:
        pass


class FileServer(Quiet, SimpleHTTPRequestHandler):
    """Serves a folder and records every path asked for."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path.lstrip("/"))
        super().do_GET()


def _bfloat16_runs() -> bool:
    from fmnist_edge.train.precision import bfloat16_warning

    try:
        bfloat16_warning()
    except ValueError:
        return False
    return True


BFLOAT16_RUNS = _bfloat16_runs()  # TensorFlow trains in bfloat16 everywhere but x86 CPUs without AVX-512
