"""`fmnist-edge serve`: the thin command over fmnist_edge.serve. Starlette and uvicorn are imported
only when the command runs, so every other command (and `classify`'s start-up) never pays for them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.options import BACKEND_HELP, fail, require
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.errors import FmnistEdgeError

SERVE_MODULES = (("starlette", "starlette"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart"))

SERVE_HELP = """Serve a web page and a JSON API that classify photos: a phone on the same network
photographs a garment and this machine answers.

The page at / has one button that opens the phone's camera (or picks a file) and shows the answer,
its confidence, the top 3 when it is unsure, and the 28x28 image the model saw. It is plain HTML
shipped in the package: it works offline and fetches nothing from another host. The API:
POST /classify takes the photo as the request body or as a multipart file field (?top_k=K as
classify's --top-k) and answers with the object `classify --json` prints, plus the model's file,
SHA-256 and threshold ("model") and its 28x28 input as a PNG data URL ("input"); GET /health;
GET /model. Errors are one JSON line: 413 too large, 415 not an image, 422 an unusable image,
503 busy (with Retry-After), 408 an upload slower than --timeout.

Binds 127.0.0.1 (this machine only) unless --host says otherwise: --host 0.0.0.0 serves the
network and prints the address to open on a phone. Photos are worked on by --threads worker threads
(default: one per core), each with its own one-thread interpreter; --queue more may wait, and a
request beyond that gets 503 at once. No upload is written to disk or logged.

Ctrl-C or SIGTERM: stops accepting, finishes the requests in hand (up to 3 s) and exits 130.
Exit codes: 130 stopped by a signal; 2 usage error (bad option, port in use, missing or unusable
model, [serve] extra not installed). Needs: pip install "fmnist-edge[serve]".
"""


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 for every network interface.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 lets the system choose (it is printed).")]
    = 8000,
    model: Annotated[
        Path | None, typer.Option(help="A .tflite or .onnx model.", show_default="the bundled model the backend runs")
    ] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(min=1, max=registry.MAX_THREADS, help="Worker threads, each with its own one-thread interpreter.",
                     show_default="all cores"),
    ] = None,
    queue: Annotated[int, typer.Option(min=0, max=1000, help="Requests that may wait beyond those being worked on.")]
    = 8,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may take, upload included.")] = 30.0,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload accepted, in MB.")] = 25.0,
    save_input: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Write each photo's 28x28 model input as PNG into this folder, as classify "
                     "does (never over an existing file)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log each request's line (never its body).")] = True,
) -> None:
    try:
        for module, package in SERVE_MODULES:
            require(module, package, "serve")
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    from fmnist_edge.runtime.backends import cores
    from fmnist_edge.serve.server import Options
    from fmnist_edge.serve.server import serve as run

    options = Options(host, port, model, None if backend == "auto" else backend, threads or cores(), queue, timeout,
                      round(max_upload_mb * 1_000_000), save_input, access_log)
    try:
        code = run(options, say=typer.echo)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)
