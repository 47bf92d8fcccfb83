"""Fashion-MNIST from the four official IDX files, verified by the SHA-256 of their decompressed bytes.

Hashing the decompressed content (not the .gz) lets recompressed copies such as Debian's
`dataset-fashion-mnist` pass while any change to the pixels or labels fails. Lookup order:
an explicit directory (--data-dir or $FMNIST_EDGE_DATA), the user cache, Debian's system copy,
then a download into the cache from the official mirror, or from $FMNIST_EDGE_MIRROR (a base URL
holding the four files under their official names; the hashes make any mirror as good as the source).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.common.errors import DataError
from fmnist_edge.train.download import download

ENV_DATA_DIR = "FMNIST_EDGE_DATA"
ENV_MIRROR = "FMNIST_EDGE_MIRROR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MAX_DOWNLOAD_BYTES = 64 << 20  # per file: the largest, train-images, is 26 MB gzipped
DEADLINE = 900.0  # seconds per file: the 26 MB file needs 30 KB/s to make it


@dataclass(frozen=True)
class IdxFile:
    name: str
    sha256: str  # of the decompressed bytes
    shape: tuple[int, ...]

    @property
    def raw_size(self) -> int:
        """Bytes once decompressed: the IDX header (4 bytes, then 4 per dimension) and one byte per value."""
        return 4 + 4 * len(self.shape) + math.prod(self.shape)


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


def download_all(target: Path, mirror: str | None = None, deadline: float = DEADLINE) -> Path:
    """Download any missing file into `target`; each takes its name only once its content checks out."""
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    base = (mirror or os.environ.get(ENV_MIRROR) or MIRROR).rstrip("/") + "/"
    # stderr: the command's stdout stays its result
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        for spec in FILES.values():
            final = target / spec.name
            if final.is_file():
                continue
            task = bar.add_task(spec.name, total=None)
            try:
                download(
                    base + spec.name, final, sha256=spec.sha256, max_bytes=MAX_DOWNLOAD_BYTES, deadline=deadline,
                    digest=lambda path, spec=spec: hashlib.sha256(_decompressed(path, spec)).hexdigest(),
                    progress=lambda done, total, task=task: bar.update(task, completed=done, total=total),
                )
            except DataError as exc:
                raise DataError(f"{exc}; check the network, set ${ENV_MIRROR} or use --data-dir") from None
    return target


def _decompressed(path: Path, spec: IdxFile) -> bytes:
    """The file's content, read no further than one byte past its known size, so a gzip bomb
    (a few MB that inflate to many GB) costs no more memory than the real file.

    A damaged gzip stream is a ValueError, as download() expects of a digest; OSError is left for
    a file that cannot be read at all."""
    try:
        with gzip.open(path) as fh:
            return fh.read(spec.raw_size + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"truncated or not a gzip file: {exc}") from None


def _read_verified(path: Path, spec: IdxFile) -> bytes:
    try:
        raw = _decompressed(path, spec)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is unreadable, truncated or not a gzip file ({exc}); "
                        "delete it and fetch it again") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{path} has the wrong content (sha256 {digest[:12]}…, expected {spec.sha256[:12]}…); "
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
