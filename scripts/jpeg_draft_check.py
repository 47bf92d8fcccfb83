"""Is decoding big JPEGs at a smaller scale worth it? Answers changed, set against re-saving at q95.

preprocess decodes a big JPEG at 1/2, 1/4 or 1/8 of its size (Pillow's draft mode: the DCT scales
for free), the smallest scale that keeps both sides at least JPEG_DRAFT px. A smaller JPEG_DRAFT
decodes faster and resizes less, and changes the pixels. The rule for keeping it: it may change
answers (top-1, or the unsure flag) no more often than re-saving the same JPEG at quality 95 does,
a change nobody would call a different photo.

There are no 12 MP photos in the repository, so this makes them: each photo enlarged (Lanczos) to
--side px on its long side and saved at JPEG quality 90, as a phone does. Enlarged photos have less
fine detail than a camera's, which favours the smaller scale; say so next to any figure from here.

    .venv/bin/python scripts/jpeg_draft_check.py --draft 256 tests/data/photos [more folders...]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_edge.runtime import preprocess as prep
from fmnist_edge.runtime.classifier import Classifier


def enlarged_jpeg(path: Path, side: int) -> bytes:
    image = Image.open(path).convert("RGB")
    scale = side / max(image.size)
    big = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def resaved(data: bytes, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def prepared(data: bytes, draft: int) -> tuple[np.ndarray, float]:
    """The model input with JPEG_DRAFT = draft, and the ms it took."""
    saved = prep.JPEG_DRAFT
    prep.JPEG_DRAFT = draft
    try:
        t0 = time.perf_counter()
        pixels = prep.preprocess(data)
        return pixels, 1e3 * (time.perf_counter() - t0)
    finally:
        prep.JPEG_DRAFT = saved


def changes(classifier: Classifier, a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(top-1 changes, unsure flips) between the answers on two sets of inputs."""
    pa, pb = classifier.to_predictions(classifier.predict(a)), classifier.to_predictions(classifier.predict(b))
    pairs = list(zip(pa, pb, strict=True))
    return sum(x.index != y.index for x, y in pairs), sum(x.unsure != y.unsure for x, y in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--draft", type=int, default=prep.WORK_SIZE, help="the candidate JPEG_DRAFT")
    parser.add_argument("--side", type=int, default=4032, help="long side of the made-up phone photos (12 MP at 4:3)")
    args = parser.parse_args()
    files = sorted(p for folder in args.folders for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    print(f"{len(files)} photos, each enlarged to {args.side} px ...", flush=True)
    current = prep.JPEG_DRAFT
    now, candidate, again, now_ms, candidate_ms = [], [], [], [], []
    for path in files:  # one at a time: 12 MP JPEGs are megabytes each
        big = enlarged_jpeg(path, args.side)
        for draft, inputs, times in ((current, now, now_ms), (args.draft, candidate, candidate_ms)):
            pixels, ms = prepared(big, draft)
            inputs.append(pixels)
            times.append(ms)
        again.append(prepared(resaved(big), current)[0])
    classifier = Classifier(threads=1)
    now, candidate, resaved_inputs = np.stack(now), np.stack(candidate), np.stack(again)
    now_ms, candidate_ms = float(np.median(now_ms)), float(np.median(candidate_ms))
    print(f"{len(files)} photos enlarged to {args.side} px, JPEG q90; current JPEG_DRAFT {current}, "
          f"candidate {args.draft}")
    print(f"  preprocess median: current {now_ms:.1f} ms, candidate {candidate_ms:.1f} ms "
          f"({candidate_ms / now_ms:.2f}x)")
    top1, flips = changes(classifier, now, candidate)
    print(f"  candidate vs current:            {top1} top-1 changes, {flips} unsure flips")
    top1, flips = changes(classifier, now, resaved_inputs)
    print(f"  re-saved at q95 vs current:      {top1} top-1 changes, {flips} unsure flips (the allowance)")


if __name__ == "__main__":
    main()
