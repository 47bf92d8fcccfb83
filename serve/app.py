"""The web app: the page at `/`, `POST /classify`, `GET /health` and `GET /model`, as a Starlette app.

Every error is one JSON object, `{"error": "<one line>"}`, worded as classify words it, with the
status that says whose fault it is:

    400  no photo in the request, a malformed form, a bad query parameter
    404  no such page; 405 a method the page does not take
    408  the upload did not arrive within the time limit
    413  the upload is larger than the cap
    415  the bytes are no image format the server can read
    422  an image that cannot be used: broken, truncated, too large to decode safely, too small
    500  the model gave no finite answer
    503  the queue is full, or the photo was not done in time (both with Retry-After)

The server goes on after each of them. Uploads are never logged (the access log has the request
line only) and never written anywhere unless --save-input asks for the model's 28x28 input.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fmnist_edge.classify import answer_object
from fmnist_edge.inputs import Input
from fmnist_edge.runtime.errors import ImageError, ModelError, NotAnImageError
from fmnist_edge.runtime.manifest import entry_for, manifest_beside, sha256_file
from fmnist_edge.save_input import InputSaver
from fmnist_edge.serve.pool import Answer, ModelPool, TimedOut
from fmnist_edge.serve.upload import image_from, read_body

RETRY_AFTER = "1"  # seconds: about what a queue of photos takes to drain on a Pi
# The page's own policy: everything from this server, images also from data: and blob: URLs (the
# 28x28 input and the photo's preview). A page that tried to reach another host would be stopped.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")


@dataclass(frozen=True)
class Limits:
    max_body: int  # bytes of one upload
    timeout: float  # seconds from the request's start to its answer


def model_description(pool: ModelPool) -> dict[str, object]:
    """What GET /model says: the manifest's entry for the file the pool runs, and how it runs."""
    classifier = pool.first
    path: Path = classifier.path
    entry = entry_for(manifest_beside(path) or {}, path.name) or {}
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "format": entry.get("format"),
        "precision": entry.get("precision"),
        "test_accuracy": entry.get("test_accuracy"),
        "unsure_threshold": classifier.unsure_threshold,
        "verified": classifier.verified,
        "backend": classifier.backend.name,
        "workers": pool.workers,
    }


def create_app(pool: ModelPool, limits: Limits, saver: InputSaver | None = None) -> Starlette:
    """The app around a loaded pool. `saver`: --save-input's folder, created already."""
    described = model_description(pool)
    identity = {key: described[key] for key in ("file", "sha256", "unsure_threshold")}
    page = (resources.files("fmnist_edge.serve") / "page" / "index.html").read_bytes()

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache",
                                           "X-Content-Type-Options": "nosniff"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "workers": pool.workers, "capacity": pool.capacity,
                             "in_hand": pool.in_hand})

    async def model(request: Request) -> Response:
        return JSONResponse(described)

    async def classify(request: Request) -> Response:
        top_k = _top_k(request)
        if not pool.admit():
            raise HTTPException(503, f"the server is busy ({pool.capacity} photos in hand); try again",
                                headers={"Retry-After": RETRY_AFTER})
        submitted = False
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limits.timeout
            try:
                body = await asyncio.wait_for(read_body(request, limits.max_body), limits.timeout)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the upload did not arrive within {limits.timeout:g} s") from None
            image, name = await image_from(request, body, limits.max_body)
            if not image:
                raise HTTPException(400, "no photo in the request: send it as the body, or as a multipart file "
                                         "field named image")
            submitted = True
            after = None if saver is None else _saver(saver, name)
            answer = await pool.classify(image, name, max(0.0, deadline - loop.time()), after)
        except TimedOut:
            raise HTTPException(503, f"{name}: not done within {limits.timeout:g} s (the server is busy); try again",
                                headers={"Retry-After": RETRY_AFTER}) from None
        except NotAnImageError as exc:
            raise HTTPException(415, str(exc)) from None
        except ImageError as exc:
            raise HTTPException(422, str(exc)) from None
        except ModelError as exc:
            raise HTTPException(500, str(exc)) from None
        finally:
            if not submitted:
                pool.leave()  # a submitted photo's place is given back by its thread, when done
        obj = answer_object(name, answer.prediction, top_k)
        obj["model"] = identity
        obj["input"] = answer.input_png
        return JSONResponse(obj)

    async def error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/classify", classify, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", model, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: error})


def _top_k(request: Request) -> int:
    """?top_k=K, 1 to 10 as classify's --top-k; 1 by default, as there."""
    raw = request.query_params.get("top_k", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise HTTPException(400, f"top_k={raw!r}: choose 1 to 10")
    return int(raw)


def _saver(saver: InputSaver, name: str):
    """--save-input for one upload: its 28x28 input written as classify writes it, never over a file.
    A failure to write is one line on the server's stderr; the answer still goes out."""

    def save(answer: Answer) -> None:
        error = saver.save(Input(name, None), answer.pixels)
        if error is not None:
            print(f"error: {error}", file=sys.stderr, flush=True)

    return save
