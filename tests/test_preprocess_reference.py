"""Preprocessing gives, byte for byte, the 28x28 inputs it gave before it was made faster.

tests/data/preprocess_reference.npz holds the model input of each test photo and example as the
code at commit 2f5638b computed it (scripts/preprocess_reference.py wrote it, before any speed-up).
A change that moves one pixel by one level fails here: it would change what the model sees, and so
every accuracy figure measured on these photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmnist_edge.runtime.preprocess import preprocess

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = np.load(ROOT / "tests" / "data" / "preprocess_reference.npz")


def test_reference_covers_every_test_photo() -> None:
    photos = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests/data/photos").glob("*.jpg")}
    assert len(photos) == 36
    assert photos <= set(REFERENCE["files"].tolist())


@pytest.mark.parametrize("index", range(len(REFERENCE["files"])), ids=REFERENCE["files"].tolist())
def test_same_bytes_as_before(index: int) -> None:
    path = ROOT / str(REFERENCE["files"][index])
    got = preprocess(path)
    assert got.dtype == np.uint8 and got.shape == (28, 28)
    assert np.array_equal(got, REFERENCE["pixels"][index]), f"{path.name}: the model input changed"


@pytest.mark.parametrize("index", [0, 20])
def test_bytes_and_path_give_the_same_input(index: int) -> None:
    """The server hands preprocess the upload's bytes, classify a path: both must see one image."""
    path = ROOT / str(REFERENCE["files"][index])
    assert np.array_equal(preprocess(path.read_bytes()), REFERENCE["pixels"][index])
