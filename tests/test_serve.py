"""`fmnist-edge serve` as a phone and a script meet it: a real server process on a free port.

Answers must be classify's, byte for byte where they are the same object; every bad request gets
its status and one JSON line, and the server goes on; a full queue says 503; SIGTERM lets the
request in hand finish and exits 130.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="needs the [serve] extra")
pytest.importorskip("uvicorn", reason="needs the [serve] extra")

from serving import Server, running_server

from fmnist_edge.runtime.manifest import bundled_dir, entry_for, load_manifest
from fmnist_edge.runtime.spec import CLASS_NAMES
from fmnist_edge.serve.upload import safe_name

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
PHOTO = PHOTOS / "9_ankle_boot_12.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("serve")) as running:
        yield running


def classify_json(*paths: Path, top_k: int = 3) -> dict[str, dict]:
    """What `fmnist-edge classify --json --top-k K` prints, by file name."""
    done = subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", "--json", "--top-k", str(top_k),
                           *map(str, paths)], capture_output=True, text=True, check=True)
    return {Path(obj["path"]).name: obj for obj in map(json.loads, done.stdout.splitlines())}


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file, as a browser's form sends it."""
    boundary = "fmnist-edge-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def assert_same_answer(served: dict, printed: dict) -> None:
    """Every field classify prints, equal (confidences within 1e-6), whatever the path is called."""
    assert set(served) - {"model", "input", "path"} == set(printed) - {"path"}
    for key in ("index", "label", "unsure"):
        assert served[key] == printed[key], key
    assert served["confidence"] == pytest.approx(printed["confidence"], abs=1e-6)
    for mine, theirs in zip(served["top_k"], printed["top_k"], strict=True):
        assert (mine["index"], mine["label"]) == (theirs["index"], theirs["label"])
        assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-6)


def test_answers_equal_classify_json_on_every_test_photo(server: Server) -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))
    assert len(photos) == 36
    printed = classify_json(*photos)
    _, _, model = server.request("GET", "/model")
    for photo in photos:
        status, _, served = server.post_image(photo.read_bytes(), "/classify?top_k=3")
        assert status == 200, served
        assert served["path"] == "upload"  # a raw body carries no file name
        assert_same_answer(served, printed[photo.name])
        assert served["model"] == {k: model[k] for k in ("file", "sha256", "unsure_threshold")}


def test_a_multipart_upload_is_answered_under_its_file_name(server: Server) -> None:
    body, headers = multipart("image", "boot.jpg", PHOTO.read_bytes())
    status, _, served = server.request("POST", "/classify?top_k=3", body, headers)
    assert status == 200, served
    assert served["path"] == "boot.jpg"
    assert_same_answer(served, classify_json(PHOTO)[PHOTO.name])


def test_the_input_shown_is_the_28x28_image_the_model_saw(server: Server, tmp_path: Path) -> None:
    """The page shows `input`: it must be exactly what classify --save-input writes for the file."""
    subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", str(PHOTO), "--save-input", str(tmp_path)],
                   capture_output=True, check=True)
    _, _, served = server.post_image(PHOTO.read_bytes())
    prefix = "data:image/png;base64,"
    assert served["input"].startswith(prefix)
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(served["input"][len(prefix):]))))
    saved = np.asarray(Image.open(tmp_path / f"{PHOTO.stem}.png"))
    assert shown.shape == (28, 28) and np.array_equal(shown, saved)


def test_health_and_model(server: Server) -> None:
    status, _, health = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["capacity"] >= health["workers"] >= 1
    status, _, model = server.request("GET", "/model")
    manifest = load_manifest(bundled_dir())
    entry = entry_for(manifest, manifest["default_model"])
    assert status == 200
    assert model["file"] == entry["file"] and model["sha256"] == entry["sha256"]
    assert model["test_accuracy"] == entry["test_accuracy"] and model["unsure_threshold"] == entry["unsure_threshold"]
    assert model["verified"] is True and model["backend"]


def huge_png(width: int, height: int) -> bytes:
    """A few bytes of PNG that declare width x height pixels: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buffer, format="PNG")
    return buffer.getvalue()


BAD_UPLOADS = {
    "text": (b"this is not a photo\n", 415, "upload: not an image Pillow can read"),
    "truncated": (PHOTO.read_bytes()[:3000], 422, "upload: cannot decode image (image file is truncated"),
    "bomb": (huge_png(9000, 9000), 422, "upload: 9000x9000 is too large to decode safely (limit 64 MP)"),
    "too small": (tiny_png(), 422, "upload: 4x4 px is too small; need at least 8 px a side"),
    "empty": (b"", 400, "no photo in the request"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_a_bad_upload_is_one_json_line_and_the_server_goes_on(server: Server, case: str) -> None:
    data, expected_status, wording = BAD_UPLOADS[case]
    status, headers, body = server.post_image(data)
    assert status == expected_status
    assert list(body) == ["error"] and body["error"].startswith(wording) and "\n" not in body["error"]
    assert headers["content-type"] == "application/json"
    assert server.post_image(PHOTO.read_bytes())[0] == 200


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/nothing-here", 404), ("GET", "/classify", 405), ("POST", "/classify?top_k=0", 400),
    ("POST", "/classify?top_k=11", 400),
])
def test_wrong_requests_get_json_errors(server: Server, method: str, path: str, status: int) -> None:
    got, _, body = server.request(method, path, PHOTO.read_bytes() if method == "POST" else None)
    assert got == status and list(body) == ["error"]


def test_a_form_without_a_file_is_refused(server: Server) -> None:
    boundary = "b0undary"
    body = f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}--\r\n"
    status, _, answer = server.request("POST", "/classify", body.encode(),
                                       {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 400 and "no file" in answer["error"]


def raw_request(server: Server, length: int, first: bytes = b"") -> socket.socket:
    """A POST /classify whose headers promise `length` bytes, of which only `first` are sent yet."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.sendall(f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {length}"
                 "\r\n\r\n".encode() + first)
    return sock


def wait_until_in_hand(server: Server, count: int) -> None:
    """Until /health says `count` requests are in hand (GET /health itself takes no place)."""
    deadline = time.monotonic() + 30
    while server.request("GET", "/health")[2]["in_hand"] != count:
        assert time.monotonic() < deadline, f"the server never had {count} requests in hand"
        time.sleep(0.02)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of the one response on `sock` (the server closes or sends it whole)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_the_upload_cap_answers_413_before_reading_the_body(tmp_path: Path) -> None:
    with running_server(tmp_path, "--max-upload-mb", "1") as server:
        sock = raw_request(server, 2_000_000)  # declared, never sent
        status, _, body = read_response(sock)
        sock.close()
        assert status == 413 and "1 MB" in body["error"]
        # No declared length (chunked): refused once the count passes the cap.
        status, _, body = server.request("POST", "/classify", iter([b"\0" * 500_000] * 3),
                                         {"Content-Type": "image/jpeg"})
        assert status == 413
        assert server.post_image(PHOTO.read_bytes())[0] == 200


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    """One worker and one place in the queue: two uploads in progress hold both, so a third is refused
    at once; the two are still answered when their bytes arrive."""
    data = PHOTO.read_bytes()
    with running_server(tmp_path, "--threads", "1", "--queue", "1") as server:
        held = [raw_request(server, len(data), data[:100]) for _ in range(2)]
        wait_until_in_hand(server, 2)  # admitted on their headers, while their uploads are incomplete
        status, headers, body = server.post_image(data)
        assert status == 503 and headers["retry-after"] == "1" and "busy" in body["error"]
        for sock in held:
            sock.sendall(data[100:])
            assert read_response(sock)[0] == 200
            sock.close()
        assert server.post_image(data)[0] == 200  # and the places were given back


def test_an_upload_slower_than_the_time_limit_gets_408(tmp_path: Path) -> None:
    with running_server(tmp_path, "--timeout", "1") as server:
        sock = raw_request(server, 5000, b"\xff\xd8")  # starts, then stalls
        status, _, body = read_response(sock)
        sock.close()
        assert status == 408 and "1 s" in body["error"]
        assert server.post_image(PHOTO.read_bytes())[0] == 200


def test_sigterm_finishes_the_request_in_hand_then_exits_130(tmp_path: Path) -> None:
    data = PHOTO.read_bytes()
    with running_server(tmp_path) as server:
        sock = raw_request(server, len(data), data[:100])
        wait_until_in_hand(server, 1)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # it stops accepting new connections...
            try:
                socket.create_connection((server.host, server.port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the server still accepts connections 3 s after SIGTERM")
        sock.sendall(data[100:])  # ...but answers the one it has
        status, _, answer = read_response(sock)
        sock.close()
        assert status == 200 and answer["label"] in CLASS_NAMES
        assert server.process.wait(5) == 130


def test_save_input_writes_each_28x28_input_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    with running_server(tmp_path, "--save-input", str(folder)) as server:
        for _ in range(2):
            body, headers = multipart("image", "../../boot.jpg", PHOTO.read_bytes())
            assert server.request("POST", "/classify", body, headers)[0] == 200
    assert sorted(p.name for p in folder.iterdir()) == ["boot-2.png", "boot.png"]
    assert np.asarray(Image.open(folder / "boot.png")).shape == (28, 28)
    assert not list(tmp_path.glob("*.png")), "the client's ../ reached outside the folder"


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "fmnist_edge", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use)"]


def test_without_the_serve_extra_serve_names_the_install_command() -> None:
    hide = "import sys; sys.modules['uvicorn'] = None; sys.argv = ['fmnist-edge', 'serve']; " \
           "from fmnist_edge.main import main; main()"
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ('error: uvicorn is not installed; this command needs it: '
                                   'pip install "fmnist-edge[serve]"')


def test_the_runtime_and_the_cli_do_not_load_the_web_stack() -> None:
    code = ("import sys; import fmnist_edge.app, fmnist_edge.runtime.classifier, fmnist_edge.classify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'python_multipart')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("sent", "shown"), [
    (None, "upload"), ("", "upload"), ("boot.jpg", "boot.jpg"), ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\boot.jpg", "boot.jpg"), ("..", "upload"), ("a\x1b[31mb\nc.jpg", "a[31mbc.jpg"),
    ("x" * 300 + ".jpg", "x" * 100),
])
def test_a_client_file_name_is_reduced_to_a_safe_name(sent: str | None, shown: str) -> None:
    assert safe_name(sent) == shown



def test_nothing_of_an_upload_reaches_the_log(tmp_path: Path) -> None:
    marker = b"SECRET-UPLOAD-BYTES-0123456789"
    with running_server(tmp_path) as server:
        assert server.post_image(marker)[0] == 415
        assert server.request("POST", "/classify", *multipart("image", "x.jpg", marker))[0] == 415
        assert server.post_image(PHOTO.read_bytes())[0] == 200
    assert marker.decode() not in server.output()
    assert "POST /classify" in server.output()  # the access log was on: it has the request line only


def test_a_multipart_file_over_1_mb_stays_in_memory() -> None:
    """Starlette's form parser spools a file over 1 MB to a temporary file (unnamed on Linux, so it
    never shows in a folder); the server's parser must keep it in memory. Starlette's own parser
    and python-multipart run here, on a real request; only the spool's state is looked at."""
    import asyncio

    from starlette.requests import Request

    from fmnist_edge.serve.upload import _InMemoryParser

    data = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    body, headers = multipart("image", "big.png", data)
    scope = {"type": "http", "method": "POST", "path": "/classify", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    async def parse() -> bool:
        async def once():
            yield body
        form = await _InMemoryParser(Request(scope).headers, once(), max_part_size=len(body)).parse()
        upload = form["image"]
        rolled = upload.file._rolled  # SpooledTemporaryFile: True once it has moved to a file on disk
        assert await upload.read() == data
        await form.close()
        return rolled

    assert asyncio.run(parse()) is False


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_backend_runs_the_model_classify_runs_with_it(tmp_path: Path, backend: str) -> None:
    """--backend as classify's: the same bundled model (int8 ONNX, float TFLite), the same answers."""
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    photos = sorted(PHOTOS.glob("*.jpg"))[::12]  # three photos, three classes
    done = subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", "--json", "--top-k", "3",
                           "--backend", backend, *map(str, photos)], capture_output=True, text=True, check=True)
    printed = {Path(o["path"]).name: o for o in map(json.loads, done.stdout.splitlines())}
    with running_server(tmp_path, "--backend", backend) as server:
        _, _, model = server.request("GET", "/model")
        assert model["backend"] == backend
        for photo in photos:
            status, _, served = server.post_image(photo.read_bytes(), "/classify?top_k=3")
            assert status == 200 and served["model"]["file"] == model["file"]
            assert_same_answer(served, printed[photo.name])


async def asgi_post(app, body: bytes) -> tuple[int, dict[str, str], dict]:
    """One POST /classify of `body` handed straight to the app (no socket), as uvicorn hands it."""
    import asyncio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/classify", "raw_path": b"/classify", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "headers": [(b"content-type", b"image/jpeg"), (b"content-length", str(len(body)).encode())]}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 30)
    headers = {k.decode().lower(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_a_photo_not_done_in_time_gets_503_and_its_place_comes_back() -> None:
    """The one worker is held by a photo whose --save-input step waits, so the next photo waits in
    the queue past the time limit: 503 with Retry-After, its place is given back at once (it is taken
    off the queue, never classified), and once the worker is free photos are answered again. Driven
    in the app without a socket: over a socket no photo is slow on every machine, which is why the
    real-server tests above cannot reach this path."""
    import asyncio
    import threading

    from fmnist_edge.serve.app import Limits, create_app
    from fmnist_edge.serve.pool import ModelPool

    data = PHOTO.read_bytes()
    pool = ModelPool(None, None, workers=1, queue_size=1)
    app = create_app(pool, Limits(max_body=1_000_000, timeout=0.3))
    gate, holding = threading.Event(), threading.Event()

    def hold(answer) -> None:
        holding.set()
        gate.wait(30)

    async def until_in_hand(count: int) -> None:
        for _ in range(500):
            if pool.in_hand == count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{pool.in_hand} requests in hand, not {count}")

    async def scenario() -> None:
        assert pool.admit()
        held = asyncio.ensure_future(pool.classify(data, "held.jpg", 30, hold))
        while not holding.is_set():
            await asyncio.sleep(0.01)
        status, headers, body = await asgi_post(app, data)
        assert status == 503 and headers["retry-after"] == "1"
        assert "not done within 0.3 s (the server is busy); try again" in body["error"]
        await until_in_hand(1)  # only the held photo: the refused one left the queue unstarted
        gate.set()
        assert (await held).prediction.label in CLASS_NAMES
        await until_in_hand(0)
        status, _, answer = await asgi_post(app, data)
        assert status == 200 and answer["label"] in CLASS_NAMES

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        pool.close()
