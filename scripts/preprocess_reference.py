"""Write tests/data/preprocess_reference.npz: the 28x28 model input of every test photo and example.

Why: a faster preprocess must give byte-identical model inputs, and the only trustworthy witness
is the output of the code before the change. The committed file was written by this script with
runtime/preprocess.py as it was at commit 2f5638b (before any speed-up), and
tests/test_preprocess_reference.py compares the current code with it. Rerun it only for a change
that is meant to alter the inputs, and say so.

    .venv/bin/python scripts/preprocess_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_edge.runtime.preprocess import preprocess

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "preprocess_reference.npz"
SUFFIXES = {".jpg", ".jpeg", ".png"}
# The 36 test photos, the examples, and three pictures for the other routes through preprocess: a
# dataset-style image enlarged (not negated again), the same at 1600 px (reduced before anything
# else) and a photo with transparency (composited onto white).
FOLDERS = ("tests/data/photos", "tests/data/preprocess", "examples")


def reference_files() -> list[Path]:
    """The test photos and the examples, relative to the repo root, in a stable order."""
    found = [p for folder in FOLDERS for p in sorted((ROOT / folder).iterdir())]
    return [p.relative_to(ROOT) for p in found if p.suffix.lower() in SUFFIXES]


def main() -> None:
    files = reference_files()
    pixels = np.stack([preprocess(ROOT / f) for f in files])
    np.savez_compressed(OUT, files=np.array([f.as_posix() for f in files]), pixels=pixels)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(files)} inputs")


if __name__ == "__main__":
    main()
