"""Golden data: a hundred test images with the scores the shipped int8 model gave them at export.

`fmnist-edge selftest` replays them on the device, so a broken wheel, a different CPU's kernels
or a changed preprocessing path shows up as a number rather than as quietly worse answers.
export/golden.py writes the file; this module owns its name and its keys, and reads it back.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.errors import FmnistEdgeError, GoldenError, MissingGoldenError, reraise_as
from fmnist_edge.runtime.manifest import bundled_dir, load_manifest
from fmnist_edge.runtime.spec import IMAGE_SIZE, NUM_CLASSES

GOLDEN_FILE = "golden.npz"
KEYS = ("images", "labels", "indices", "scores", "model_file", "model_sha256", "recorded_with")


@dataclass(frozen=True)
class Golden:
    images: np.ndarray  # uint8 [N, 28, 28], light on dark, as in the test set
    labels: np.ndarray  # the test set's labels, for reference; the check is against `scores`
    indices: np.ndarray  # positions in the 10k test set
    scores: np.ndarray  # float32 [N, 10]: dequantized outputs of `model_file`
    model_file: str
    model_sha256: str  # of the model that produced `scores`
    recorded_with: str  # interpreter and version, e.g. "litert 2.3.0, 1 thread"
    path: Path

    def __len__(self) -> int:
        return len(self.labels)


def default_path() -> Path:
    """The bundled golden data: the file the manifest lists (an export publishing at this moment may
    list it under a content-addressed name), else golden.npz."""
    directory = bundled_dir()
    try:
        entry = load_manifest(directory).get("golden")
    except FmnistEdgeError:
        entry = None  # the Classifier reports the manifest itself
    return directory / (entry["file"] if entry else GOLDEN_FILE)


def load_golden(path: Path | None = None) -> Golden:
    """Read and sanity-check a golden file; a missing one raises MissingGoldenError."""
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise MissingGoldenError(
            f"no golden data at {path}; it is written by `fmnist-edge export --int8` and shipped with the package"
        )
    if not zipfile.is_zipfile(path):  # else np.load guesses "pickle" and says so, which misleads
        raise GoldenError(f"{path}: golden data is not an .npz archive (corrupt or truncated)")
    with (reraise_as(GoldenError, f"{path}: unreadable golden data", OSError, ValueError, EOFError, zipfile.BadZipFile),
          np.load(path, allow_pickle=False) as data):
        fields = {k: data[k] for k in KEYS if k in data.files}
    missing = [k for k in KEYS if k not in fields]
    if missing:
        raise GoldenError(f"{path}: golden data lacks {', '.join(missing)}")
    golden = Golden(
        images=fields["images"],
        labels=fields["labels"],
        indices=fields["indices"],
        scores=fields["scores"].astype(np.float32),
        model_file=str(fields["model_file"]),
        model_sha256=str(fields["model_sha256"]),
        recorded_with=str(fields["recorded_with"]),
        path=path,
    )
    n = len(golden.labels)
    if (
        n == 0
        or golden.images.dtype != np.uint8
        or golden.images.shape != (n, IMAGE_SIZE, IMAGE_SIZE)
        or golden.scores.shape != (n, NUM_CLASSES)
    ):
        raise GoldenError(
            f"{path}: golden arrays have unexpected shapes (images {list(golden.images.shape)}, "
            f"scores {list(golden.scores.shape)})"
        )
    return golden
