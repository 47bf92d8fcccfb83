"""A seeded fuzz corpus: corrupted images in six formats must each give exactly one line, never a traceback.

Why: the decoders under Pillow (libpng, libjpeg, giflib-like code, libtiff, libwebp, its own BMP
reader) fail in many ways on hostile bytes: OSError, ValueError, SyntaxError, struct.error,
RuntimeError, IndexError, MemoryError. Listing the ones seen so far is how one kind escaped the
last time, so this test does not list them: it mutates valid files at random (a fixed seed, so a
failure reproduces) and checks only the contract, one JSON object per input, in order, and exit
0 or 1. It runs `classify` in a child process, so a decoder that crashes the interpreter fails the
test instead of taking pytest down with it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MUTATIONS_PER_FORMAT = 500
SEED = 13
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


def base_image() -> Image.Image:
    """A small photo-like picture: a coloured item on a textured floor, 48x40 (decodes in microseconds)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(90, 140, (40, 48, 3), dtype=np.uint8)
    pixels[8:32, 14:34] = (200, 40, 60)
    return Image.fromarray(pixels, "RGB")


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = base_image()
    if fmt == "GIF":
        image = image.convert("P")
    image.save(buffer, fmt, **({"exif": _exif()} if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else {}))
    return buffer.getvalue()


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: so the EXIF path is taken whenever the block survives
    exif[0x010F] = "fuzz"
    return exif.tobytes()


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of six corruptions, each kind of thing a disk, a transfer or an attacker does to a file."""
    raw = bytearray(data)
    kind = int(rng.integers(6))
    if kind == 0:  # flip a few bits anywhere
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(raw)))
            raw[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite a run with random bytes
        i = int(rng.integers(len(raw)))
        raw[i : i + int(rng.integers(1, 17))] = rng.bytes(int(rng.integers(1, 17)))
    elif kind == 2:  # truncate
        del raw[int(rng.integers(1, len(raw))) :]
    elif kind == 3:  # insert random bytes
        i = int(rng.integers(len(raw)))
        raw[i:i] = rng.bytes(int(rng.integers(1, 65)))
    elif kind == 4:  # duplicate a slice (repeated chunks, segments, IFDs)
        i = int(rng.integers(len(raw)))
        raw[i:i] = raw[i : i + int(rng.integers(1, 257))]
    else:  # extreme values in the header, where sizes, counts and offsets live
        for _ in range(int(rng.integers(1, 5))):
            raw[int(rng.integers(min(64, len(raw))))] = int(rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return bytes(raw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    files = []
    for fmt, suffix in FORMATS.items():
        rng = np.random.default_rng([SEED, len(files)])
        data = encoded(fmt)
        for i in range(MUTATIONS_PER_FORMAT):
            path = folder / f"{fmt.lower()}_{i:03d}{suffix}"
            path.write_bytes(mutate(data, rng))
            files.append(path)
    return files


@pytest.mark.slow
def test_every_corrupted_image_gets_exactly_one_line_and_no_traceback(corpus: list[Path]) -> None:
    folder = corpus[0].parent
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_edge", "classify", "--json", str(folder)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["path"] for o in objects] == sorted(str(p) for p in corpus)  # one each, in order
    assert all(("label" in o) != ("error" in o) for o in objects)
    errors = [o["error"] for o in objects if "error" in o]
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    # Every stderr line is one of ours; libtiff may add its own "TIFFReadDirectory: ..." warnings.
    ours = [line for line in stderr if line.startswith("error: ")]
    assert ours == [f"error: {e}" for e in errors]
    assert all(line.startswith(("error: ", "warning: ")) or ": " in line for line in stderr)
    # The corpus is not all rejects: plenty of mutations leave a decodable image, and those answer.
    assert len(errors) < len(objects)
