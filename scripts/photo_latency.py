"""Time per photo of what `classify photo.jpg` does after start-up, for one or more models, in one process.

    python scripts/photo_latency.py MODEL [MODEL ...] [--photos tests/data/photos] [--rounds 7]

Each round preprocesses every photo (runtime/preprocess.py, the same for every model) and runs each
model on it and its mirror image (Classifier.predict), the models taking turns so that a noisy,
shared machine slows them alike. Prints the median milliseconds per photo of preprocessing and of
each model, each model's total, and its total as a ratio to the first model's: compare models by
that ratio, measured in the same run, not by figures from different runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fmnist_edge.runtime import Classifier
from fmnist_edge.runtime.photo_labels import LABELS_FILE, read_labels
from fmnist_edge.runtime.preprocess import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/photos")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (a Pi-like single core: 1)")
    args = parser.parse_args()

    photos = [args.photos / row.file for row in read_labels(args.photos / LABELS_FILE, require_files=True)]
    classifiers = [Classifier(model, threads=args.threads) for model in args.models]
    prep_ms: list[float] = []
    model_ms: list[list[float]] = [[] for _ in classifiers]
    for _ in range(args.rounds + 1):  # the first round warms caches and is dropped
        for photo in photos:
            t0 = time.perf_counter()
            pixels = preprocess(photo)[None]
            prep_ms.append(1000 * (time.perf_counter() - t0))
            for timings, classifier in zip(model_ms, classifiers, strict=True):
                t0 = time.perf_counter()
                classifier.predict(pixels)
                timings.append(1000 * (time.perf_counter() - t0))
    skip = len(photos)
    prep = statistics.median(prep_ms[skip:])
    print(f"{len(photos)} photos from {args.photos}, {args.rounds} rounds, {args.threads} thread(s); "
          f"median ms per photo")
    print(f"preprocessing: {prep:.2f} ms")
    first = None
    for model, timings in zip(args.models, model_ms, strict=True):
        run = statistics.median(timings[skip:])
        total = prep + run
        first = first or total
        print(f"{model}: model {run:.2f} ms, total {total:.2f} ms, {total / first:.2f}x the first")


if __name__ == "__main__":
    main()
