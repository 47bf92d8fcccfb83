"""`fmnist-edge bench --photos DIR`: where a photo's time goes, stage by stage.

The model takes about 0.1 ms; a photo's decoding, resizing and segmentation take 100 times that,
so this is the figure to watch on a device. Each photo is read into memory first (the disk is not
timed), then preprocessed with a clock that preprocess calls as each stage ends:

    decode    read the bytes: decode (big JPEGs at reduced scale), reduce, EXIF orientation, flatten
    resize    to the 256 px working copy and the 96 px copy the segmentation works on
    segment   find the item (colour models, mask clean-up, holes, largest blob)
    cut out   soft mask, crop, negate, contrast, resize to 28x28 and centre
    model     the interpreter on the 28x28 input and its mirror image (one call)

Each photo runs `rounds` times and keeps its fastest round (this machine's other work only ever
adds time); the summary gives each stage's median and 90th percentile over the photos. A 28x28
dataset image skips resize, segment and cut out: they count 0 for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fmnist_edge.runtime import machine
from fmnist_edge.runtime.classifier import Classifier
from fmnist_edge.runtime.errors import ImageError
from fmnist_edge.runtime.preprocess import preprocess

STAGES = ("decode", "resize", "segment", "cut out", "model")
DEFAULT_ROUNDS = 3


class StageClock:
    """Milliseconds since the previous stage ended, by stage; `preprocess(mark=clock)` calls it."""

    def __init__(self) -> None:
        self.ms = dict.fromkeys(STAGES, 0.0)
        self._last = time.perf_counter()

    def restart(self) -> None:
        """Start the next stage's time now: what ran since the last stage is nobody's."""
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] += 1e3 * (now - self._last)
        self._last = now


def time_photo(data: bytes, name: str, classifier: Classifier) -> dict[str, float]:
    """One run of one photo: milliseconds per stage."""
    clock = StageClock()
    pixels = preprocess(data, name=name, mark=clock)
    clock.restart()  # preprocess's return is not the model's time
    classifier.predict(pixels[None])
    clock("model")
    return clock.ms


def photo_stages(paths: Sequence[Path], classifier: Classifier, rounds: int = DEFAULT_ROUNDS,
                 log: Callable[[str], None] = lambda _: None) -> dict[str, object]:
    """Time every photo; returns the JSON document: {"machine", "method", "stages", "photos", "unreadable"}."""
    photos, unreadable = [], []
    for path in paths:
        data = Path(path).read_bytes()
        try:
            runs = [time_photo(data, str(path), classifier) for _ in range(rounds)]
        except ImageError as exc:
            unreadable.append(str(exc))
            log(f"error: {exc}")
            continue
        best = min(runs, key=lambda ms: sum(ms.values()))
        photos.append({"file": Path(path).name, "bytes": len(data),
                       **{stage: round(best[stage], 3) for stage in STAGES},
                       "total": round(sum(best.values()), 3)})
    return {
        "machine": machine.summary(),
        "method": {"model": classifier.path.name, "backend": classifier.backend.name, "threads": 1,
                   "rounds": rounds, "kept": "each photo's fastest round", "timed": "from bytes in memory"},
        "stages": summary(photos),
        "photos": photos,
        "unreadable": unreadable,
    }


def summary(photos: list[dict]) -> dict[str, dict[str, float]]:
    """Each stage's (and the total's) median and p90 over the photos, and its share of the median total."""
    if not photos:
        return {}
    out = {}
    total = float(np.median([p["total"] for p in photos]))
    for stage in (*STAGES, "total"):
        values = np.array([p[stage] for p in photos])
        median = float(np.median(values))
        out[stage] = {"median_ms": round(median, 3), "p90_ms": round(float(np.percentile(values, 90)), 3),
                      "share": round(median / total, 3) if total else 0.0}
    return out
