"""Fashion-MNIST from the four official IDX files, verified by the SHA-256 of their decompressed bytes.

Hashing the decompressed content (not the .gz) lets recompressed copies such as Debian's
`dataset-fashion-mnist` pass while any change to the pixels or labels fails. Lookup order:
an explicit directory (--data-dir or $FMNIST_EDGE_DATA), the user cache, Debian's system copy,
then a download from the official mirror into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.common.errors import DataError

ENV_DATA_DIR = "FMNIST_EDGE_DATA"
ENV_MIRROR = "FMNIST_EDGE_MIRROR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass(frozen=True)
class IdxFile:
    name: str
    sha256: str  # of the decompressed bytes
    shape: tuple[int, ...]


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        (60000, 28, 28),
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        (60000,),
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        (10000, 28, 28),
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        (10000,),
    ),
}


@dataclass(frozen=True)
class FashionMNIST:
    train_images: np.ndarray  # uint8 [60000, 28, 28]
    train_labels: np.ndarray  # uint8 [60000]
    test_images: np.ndarray  # uint8 [10000, 28, 28]
    test_labels: np.ndarray  # uint8 [10000]
    source: Path
    sha256: dict[str, str]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fmnist-edge"


def _has_all(directory: Path) -> bool:
    return all((directory / f.name).is_file() for f in FILES.values())


def locate(data_dir: Path | None = None, download: bool = True) -> Path:
    """Return the directory holding all four files, downloading into the cache as a last resort.

    An explicit directory is a promise from the user: if it lacks the files we say so rather than
    quietly using another copy.
    """
    explicit = data_dir or (Path(os.environ[ENV_DATA_DIR]) if os.environ.get(ENV_DATA_DIR) else None)
    if explicit is not None:
        if not _has_all(explicit):
            missing = [f.name for f in FILES.values() if not (explicit / f.name).is_file()]
            raise DataError(
                f"{explicit} lacks {', '.join(missing)}; point --data-dir/${ENV_DATA_DIR} at the "
                "folder with the four Fashion-MNIST .gz files"
            )
        return explicit
    for candidate in (cache_dir(), SYSTEM_DIR):
        if _has_all(candidate):
            return candidate
    if not download:
        raise DataError(
            f"Fashion-MNIST not found in {cache_dir()} or {SYSTEM_DIR}; "
            "install Debian's dataset-fashion-mnist or allow the download"
        )
    return download_all(cache_dir())


def download_all(target: Path, mirror: str | None = None) -> Path:
    """Download any missing file into `target`, verifying each before it takes its real name."""
    import http.client
    import urllib.error
    import urllib.request

    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    base = (mirror or os.environ.get(ENV_MIRROR) or MIRROR).rstrip("/") + "/"
    target.mkdir(parents=True, exist_ok=True)
    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()) as bar:
        for spec in FILES.values():
            final = target / spec.name
            if final.is_file():
                continue
            url = base + spec.name
            try:
                with urllib.request.urlopen(url, timeout=60) as response, atomic_path(final) as tmp:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    task = bar.add_task(spec.name, total=total)
                    with tmp.open("wb") as out:
                        while chunk := response.read(1 << 16):
                            out.write(chunk)
                            bar.advance(task, len(chunk))
                    if total is not None and tmp.stat().st_size != total:
                        raise DataError(
                            f"download of {url} stopped at {tmp.stat().st_size} of {total} bytes; "
                            "run the command again"
                        )
                    _read_verified(tmp, spec, shown_name=spec.name)
            # HTTPException: a connection dropped mid-chunk raises http.client.IncompleteRead.
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                raise DataError(f"could not download {url}: {exc}; check the network or use --data-dir") from exc
    return target


def _read_verified(path: Path, spec: IdxFile, shown_name: str | None = None) -> bytes:
    shown = shown_name or str(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(
            f"{shown} is truncated or not a gzip file ({exc}); delete it and fetch it again"
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{shown} has the wrong content (sha256 {digest[:12]}…, expected {spec.sha256[:12]}…); "
            "delete it and fetch it again"
        )
    return raw


def _parse_idx(raw: bytes, spec: IdxFile) -> np.ndarray:
    # IDX header: two zero bytes, a type code (0x08 = uint8), the rank, then big-endian dims.
    rank = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if raw[2] != 0x08 or dims != spec.shape:
        raise DataError(f"{spec.name}: unexpected IDX header {raw[:4].hex()} {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(data_dir: Path | None = None, download: bool = True) -> FashionMNIST:
    """Load and verify all four files. Arrays are uint8, images 28x28 without a channel axis."""
    source = locate(data_dir, download=download)
    arrays = {key: _parse_idx(_read_verified(source / spec.name, spec), spec) for key, spec in FILES.items()}
    return FashionMNIST(
        **arrays, source=source, sha256={spec.name: spec.sha256 for spec in FILES.values()}
    )
