"""Preprocessing gives, byte for byte, the 28x28 inputs it gave before it was made faster.

tests/data/preprocess_reference.npz holds the model input of each test photo, each example and the
three pictures in tests/data/preprocess/ (dataset-style at 280 and 1600 px, a photo with
transparency) as runtime/preprocess.py at commit 2f5638b computed them: scripts/preprocess_reference.py
wrote it with that code, before any speed-up.
A change that moves one pixel by one level fails here: it would change what the model sees, and so
every accuracy figure measured on these photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fmnist_edge.runtime.preprocess import _dilate, _erode, _label, preprocess

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


def flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """What _label must give, computed the slow, obvious way: a breadth-first fill of each
    4-connected component, labelled with the smallest flat index in it; mask.size elsewhere."""
    h, w = mask.shape
    labels = np.full((h, w), h * w)
    for start in map(int, np.flatnonzero(mask)):
        r, c = divmod(start, w)
        if labels[r, c] != h * w:
            continue  # already reached from a smaller index, which is its component's label
        labels[r, c], queue = start, [(r, c)]
        while queue:
            y, x = queue.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and labels[ny, nx] == h * w:
                    labels[ny, nx] = start
                    queue.append((ny, nx))
    return labels


@pytest.mark.parametrize("seed", range(20))
def test_connected_components_match_a_flood_fill(seed: int) -> None:
    """_label (vectorised, used for hole filling and the largest blob) on random masks of every density,
    spirals and combs included: the shapes that need the most passes."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, size=2)
    mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
    if seed % 5 == 0:  # a comb: long runs joined only at one end, so labels must travel around bends
        mask = np.zeros((h, w), bool)
        mask[:, ::2] = True
        mask[-1, :] = True
    assert np.array_equal(_label(mask), flood_fill_labels(mask))
    assert np.array_equal(_label(~mask), flood_fill_labels(~mask))


@pytest.mark.parametrize("seed", range(10))
def test_erode_and_dilate_are_pillow_s_min_and_max_filters(seed: int) -> None:
    """The mask clean-up used Pillow's MinFilter(3) and MaxFilter(3) on a 0/255 image; the boolean
    versions must agree on every pixel, the frame's edge included."""
    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(1, 50, size=2))) < rng.uniform(0.1, 0.9)
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    assert np.array_equal(_erode(mask), np.asarray(image.filter(ImageFilter.MinFilter(3))) > 0)
    assert np.array_equal(_dilate(mask), np.asarray(image.filter(ImageFilter.MaxFilter(3))) > 0)
