"""`fetch-photos`: the labelled training photos, downloaded from their source and checked by SHA-256.

The downloads come from a real HTTP server on 127.0.0.1 serving a few generated JPEG "originals"
under their source paths, and the shipped table is swapped for one listing those few with their
real hashes. Nothing here uses the network or shared/photos-train; only the shipped-table test
reads the real (packaged) labels file.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import FileServer, Quiet
from PIL import Image
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.common.errors import DataError
from fmnist_edge.train import photo_data

ORIENTATION = 0x0112


class Hung(Exception):
    """Not an OSError, so photo_data can't turn it into a DataError and hide the hang."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the mirror at a closed local port (a stray download fails at once, never reaching the
    internet) and fail any test that runs over 60 s instead of letting a stuck socket hang CI."""
    monkeypatch.setenv(photo_data.ENV_MIRROR, "http://127.0.0.1:9/")

    def expire(signum: int, frame: object) -> None:
        raise Hung("test exceeded 60 s; a socket is probably stuck")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **params)
    return buffer.getvalue()


def make_originals() -> dict[str, bytes]:
    """Phone-like originals, larger than 512 px but one, keyed by file name in the output folder."""
    # Stored as the sensor saw it (landscape, red left, blue right) with a tag saying "turn 90°
    # clockwise": upright, it is portrait with red on top.
    sideways = Image.new("RGB", (800, 600), (220, 20, 20))
    sideways.paste((20, 20, 220), (400, 0, 800, 600))
    exif = sideways.getexif()
    exif[ORIENTATION] = 6
    gray = Image.linear_gradient("L").resize((1000, 700))  # a grayscale JPEG must come out RGB
    small = Image.new("RGB", (300, 200), (30, 160, 30))  # under 512 px: kept at its size
    return {
        "0_tshirt_top_001.jpg": jpeg(sideways, exif=exif),
        "1_trouser_001.jpg": jpeg(gray),
        "7_sneaker_001.jpg": jpeg(small),
    }


ORIGINALS = make_originals()


def source_path(file: str) -> str:
    return f"images/{hashlib.md5(file.encode()).hexdigest()}.jpg"  # like the source's uuid names


def table_rows(**sha_override: str) -> list[dict[str, str]]:
    rows = []
    for file, body in ORIGINALS.items():
        label, *name, _ = file.split("_")
        rows.append({
            "file": file, "label": label, "class_name": "_".join(name), "split": "train",
            "source_repo": photo_data.SOURCE_REPO, "source_commit": photo_data.SOURCE_COMMIT,
            "source_path": source_path(file),
            "source_sha256": sha_override.get(file, hashlib.sha256(body).hexdigest()),
            "sender_id": "1", "license": "CC0-1.0", "labelled_by": "hand", "view": "",
        })
    return rows


def use_table(monkeypatch: pytest.MonkeyPatch, path: Path, rows: list[dict[str, str]]) -> Path:
    """Write `rows` as the shipped labels file and make photo_data use it."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=photo_data.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(photo_data, "SHIPPED_LABELS", path)
    return path


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return use_table(monkeypatch, tmp_path / "photos_train.csv", table_rows())


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """The source repository's files at the pinned commit, as the server will serve them."""
    root = tmp_path / "origin"
    for file, body in ORIGINALS.items():
        path = root / source_path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


class HangsUpHalfway(Quiet, BaseHTTPRequestHandler):
    """Promises the whole file in Content-Length, sends half of it, then drops the connection."""

    def do_GET(self) -> None:
        body = next(iter(ORIGINALS.values()))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


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


@pytest.fixture
def mirror(origin: Path) -> Iterator[tuple[str, list[str]]]:
    """The server's base URL and the paths it was asked for, in order."""
    requests: list[str] = []
    handler = type("RecordingFileServer", (FileServer,), {"requests": requests})
    with serve(handler, origin) as url:
        yield url, requests


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


EXPECTED_FILES = sorted([*ORIGINALS, "labels.csv", ".fetched"])  # and no temp files


# --- Fetching -----------------------------------------------------------------------------------


def test_fetch_makes_the_photos_as_the_shared_folder_was_made(
    table: Path, mirror: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, requests = mirror
    out = tmp_path / "photos"

    assert photo_data.fetch_photos(out, mirror=url, log=lambda _: None) == out

    assert listing(out) == EXPECTED_FILES
    assert sorted(requests) == sorted(source_path(f) for f in ORIGINALS)
    assert (out / "labels.csv").read_bytes() == table.read_bytes()
    photos = {file: Image.open(out / file) for file in ORIGINALS}
    for image in photos.values():
        assert image.format == "JPEG" and image.mode == "RGB"
        assert max(image.size) <= photo_data.MAX_SIDE
        assert not image.getexif() and "exif" not in image.info
    # Turned upright by its EXIF tag before resizing: portrait 600x800 -> 384x512, red on top.
    upright = photos["0_tshirt_top_001.jpg"]
    assert upright.size == (384, 512)
    top, bottom = upright.getpixel((192, 64)), upright.getpixel((192, 448))
    assert top[0] > 180 and top[2] < 70 and bottom[2] > 180 and bottom[0] < 70
    assert photos["1_trouser_001.jpg"].size == (512, 358)  # 1000x700 shrunk, aspect kept
    assert photos["7_sneaker_001.jpg"].size == (300, 200)  # never enlarged


def test_rerun_downloads_nothing(table: Path, mirror: tuple[str, list[str]], tmp_path: Path) -> None:
    url, requests = mirror
    out = tmp_path / "photos"
    photo_data.fetch_photos(out, mirror=url, log=lambda _: None)
    before = {f: (out / f).stat().st_mtime_ns for f in ORIGINALS}
    requests.clear()
    messages: list[str] = []

    photo_data.fetch_photos(out, mirror=url, log=messages.append)

    assert requests == []
    assert {f: (out / f).stat().st_mtime_ns for f in ORIGINALS} == before
    assert messages == [f"3 photos in {out}: 0 fetched, 3 already there"]


def test_interrupted_fetch_resumes_with_what_is_missing(
    table: Path, mirror: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, requests = mirror
    out = tmp_path / "photos"
    photo_data.fetch_photos(out, mirror=url, log=lambda _: None)
    # As a run stopped partway leaves it: no labels.csv yet, one photo never written, one written
    # but killed before its record line, and a torn record line at the end.
    (out / "labels.csv").unlink()
    (out / "1_trouser_001.jpg").unlink()
    record = out / photo_data.RECORD_FILE
    kept = [line for line in record.read_text().splitlines() if not line.endswith("7_sneaker_001.jpg")]
    record.write_text("\n".join(kept) + "\n" + "0123abc")
    requests.clear()

    photo_data.fetch_photos(out, mirror=url, log=lambda _: None)

    assert sorted(requests) == sorted(source_path(f) for f in ("1_trouser_001.jpg", "7_sneaker_001.jpg"))
    assert listing(out) == EXPECTED_FILES
    assert photo_data._read_record(record) == {f: hashlib.sha256(b).hexdigest() for f, b in ORIGINALS.items()}


def test_wrong_hash_is_refused_and_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, _ = mirror
    bad = "1_trouser_001.jpg"
    use_table(monkeypatch, tmp_path / "photos_train.csv", table_rows(**{bad: "0" * 64}))
    out = tmp_path / "photos"

    with pytest.raises(DataError) as err:
        photo_data.fetch_photos(out, mirror=url, log=lambda _: None)

    message = str(err.value)
    assert bad in message and "sha256" in message and "not saved" in message and "\n" not in message
    # The photo before it is kept for the next run; the bad one, any temp file and labels.csv are not.
    assert listing(out) == [".fetched", "0_tshirt_top_001.jpg"]


def test_missing_file_on_the_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, _ = mirror
    rows = table_rows()
    rows[0]["source_path"] = "images/not-there.jpg"
    use_table(monkeypatch, tmp_path / "photos_train.csv", rows)
    out = tmp_path / "photos"

    with pytest.raises(DataError) as err:
        photo_data.fetch_photos(out, mirror=url, log=lambda _: None)

    message = str(err.value)
    assert "404" in message and "0_tshirt_top_001.jpg" in message and "images/not-there.jpg" in message
    assert "\n" not in message
    assert listing(out) == []


def test_connection_dropped_halfway_leaves_no_file(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos"

    with serve(HangsUpHalfway) as url, pytest.raises(DataError) as err:
        photo_data.fetch_photos(out, mirror=url, log=lambda _: None)

    assert "0_tshirt_top_001.jpg" in str(err.value) and "run again to resume" in str(err.value)
    assert listing(out) == []


def test_an_edited_labels_file_is_not_overwritten(table: Path, mirror: tuple[str, list[str]], tmp_path: Path) -> None:
    # A user who added their own rows would lose them without a word.
    url, requests = mirror
    out = tmp_path / "photos"
    out.mkdir()
    (out / "labels.csv").write_text("file,label\nmine.jpg,3\n")

    with pytest.raises(DataError, match="differs from the shipped photo labels"):
        photo_data.fetch_photos(out, mirror=url, log=lambda _: None)

    assert requests == [] and (out / "labels.csv").read_text() == "file,label\nmine.jpg,3\n"


def test_mirror_argument_then_env_then_the_pinned_github_commit(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = photo_data.load_table()[0]
    assert photo_data.source_url(photo, "http://a.example/x/") == f"http://a.example/x/{photo.source_path}"
    monkeypatch.setenv(photo_data.ENV_MIRROR, "http://b.example")
    assert photo_data.source_url(photo) == f"http://b.example/{photo.source_path}"
    monkeypatch.delenv(photo_data.ENV_MIRROR)
    assert photo_data.source_url(photo) == (
        "https://raw.githubusercontent.com/alexeygrigorev/clothing-dataset/"
        f"7ed86a9cc56763b6acb35e41cb35184e43a5d218/{photo.source_path}"
    )


@pytest.mark.parametrize(("column", "value"), [("file", "../escape.jpg"), ("source_sha256", "abc"),
                                               ("source_path", "../../etc/passwd")])
def test_a_damaged_table_is_refused_before_any_download(
    column: str, value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = table_rows()
    rows[1][column] = value
    use_table(monkeypatch, tmp_path / "photos_train.csv", rows)

    with pytest.raises(DataError, match=r"photos_train\.csv:3: "):
        photo_data.fetch_photos(tmp_path / "photos", log=lambda _: None)


# --- The shipped table --------------------------------------------------------------------------


def test_shipped_table_lists_the_700_photos() -> None:
    with photo_data.SHIPPED_LABELS.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == photo_data.COLUMNS
        rows = list(reader)

    assert len(rows) == 700 and len(photo_data.load_table()) == 700
    assert Counter(r["split"] for r in rows) == {"train": 549, "val": 151}
    # The per-class totals of shared/photos-train/README.md: no bags, few shoes.
    per_class = Counter(int(r["label"]) for r in rows)
    assert [per_class[i] for i in range(10)] == [100, 100, 100, 100, 100, 35, 100, 47, 0, 18]
    assert {(r["source_repo"], r["source_commit"], r["license"]) for r in rows} == {
        (photo_data.SOURCE_REPO, photo_data.SOURCE_COMMIT, "CC0-1.0")
    }
    assert len({r["source_sha256"] for r in rows}) == len({r["source_path"] for r in rows}) == 700


# --- `fmnist-edge fetch-photos` -----------------------------------------------------------------


def test_cli_fetch_photos_failure_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, _ = mirror
    rows = table_rows()
    rows[0]["source_path"] = "images/not-there.jpg"
    use_table(monkeypatch, tmp_path / "photos_train.csv", rows)
    monkeypatch.setenv(photo_data.ENV_MIRROR, url)

    result = CliRunner().invoke(app, ["fetch-photos", "--out", str(tmp_path / "photos")])

    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "404" in errors[0] and "0_tshirt_top_001.jpg" in errors[0]
    assert result.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in result.output


def test_cli_fetch_photos_success_names_the_folder_for_train(
    table: Path, mirror: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(photo_data.ENV_MIRROR, mirror[0])
    out = tmp_path / "photos"

    result = CliRunner().invoke(app, ["fetch-photos", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"photos ready: fmnist-edge train --photos {out}\n"
    assert listing(out) == EXPECTED_FILES


def test_cli_fetch_photos_help_says_where_the_photos_come_from() -> None:
    result = CliRunner().invoke(app, ["fetch-photos", "--help"], terminal_width=200)

    text = " ".join(result.stdout.split())
    assert result.exit_code == 0
    for fact in ("alexeygrigorev/clothing-dataset", "CC0", photo_data.SOURCE_COMMIT, "SHA-256", "train --photos",
                 photo_data.ENV_MIRROR, "Exit codes: 0", "130 interrupted"):
        assert fact in text
