"""Batch throughput of `fmnist-edge classify` on a folder of small PNGs, and when its first line comes.

    python scripts/classify_throughput.py [--images 5000] [--runs 5]

Writes IMAGES dataset-sized PNGs (the golden test images, repeated) into a temporary folder, then
runs `python -m fmnist_edge classify FOLDER` RUNS times in fresh processes, reading stdout as it
comes. Prints the median wall time (process start to exit, start-up included), images/s, and the
median time to the first result line. Set PYTHONPATH to measure another checkout's code.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from fmnist_edge.runtime.golden import load_golden


def one_run(folder: Path) -> tuple[float, float, int]:
    """(wall seconds, seconds to the first result line, result lines) of one classify process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fmnist_edge", "classify", str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    first = None
    count = 0
    for line in proc.stdout:
        if line.startswith("label"):
            continue
        count += 1
        if first is None:
            first = time.perf_counter() - start
    proc.wait()
    return time.perf_counter() - start, first or float("nan"), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    images = load_golden().images
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.images):
            Image.fromarray(images[i % len(images)]).save(folder / f"img{i:05d}.png")
        runs = [one_run(folder) for _ in range(args.runs)]
    walls, firsts, counts = zip(*runs, strict=True)
    wall = statistics.median(walls)
    print(f"{args.images} PNGs, {args.runs} runs: median {wall:.2f} s wall ({args.images / wall:,.0f} images/s, "
          f"start-up included), first line after {statistics.median(firsts):.2f} s; "
          f"lines per run {sorted(set(counts))}; walls {', '.join(f'{w:.2f}' for w in walls)}")


if __name__ == "__main__":
    main()
