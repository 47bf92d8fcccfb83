"""Time runtime/preprocess.py against another version of it, on the same photos, in one process.

Why in one process, interleaved: this machine is shared, and its load moves every figure by 2x
over minutes; alternating the two versions photo by photo, and keeping each photo's fastest of
several rounds, lets the ratio survive that where two separate runs would not. It also checks
that both give the same bytes.

    git show 2f5638b:runtime/preprocess.py > /tmp/preprocess_before.py
    .venv/bin/python scripts/preprocess_speed.py /tmp/preprocess_before.py [--photos tests/data/photos] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from fmnist_edge.runtime import preprocess as current

ROOT = Path(__file__).resolve().parent.parent


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location("preprocess_reference_version", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fastest(fn, data: bytes, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="another preprocess.py (e.g. from git show)")
    parser.add_argument("--photos", type=Path, default=ROOT / "tests" / "data" / "photos")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    before = load_module(args.reference)
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    old_ms, new_ms, differ = [], [], 0
    for path in files:
        data = path.read_bytes()
        differ += not np.array_equal(before.preprocess(data), current.preprocess(data))
        for _ in range(args.rounds):  # interleaved, so that a burst of load hits both alike
            old_ms.append((path, 1e3 * fastest(before.preprocess, data, 1)))
            new_ms.append((path, 1e3 * fastest(current.preprocess, data, 1)))
    per_photo_old = [min(ms for p, ms in old_ms if p == path) for path in files]
    per_photo_new = [min(ms for p, ms in new_ms if p == path) for path in files]
    old, new = float(np.median(per_photo_old)), float(np.median(per_photo_new))
    print(f"{len(files)} photos from {args.photos}, fastest of {args.rounds} rounds each, interleaved")
    print(f"median per photo: reference {old:.2f} ms, current {new:.2f} ms: {new / old:.2f}x "
          f"(total {sum(per_photo_new) / sum(per_photo_old):.2f}x)")
    print(f"model inputs that differ: {differ} of {len(files)}")


if __name__ == "__main__":
    main()
