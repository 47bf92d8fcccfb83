"""Epoch time and cores kept busy with the batches made on 1 thread and on 2 (train/loop.py
LOADER_THREADS), in one process, alternating, so a shared machine slows both alike.

    python scripts/loader_overlap.py [--subset N] [--epochs 2] [--rounds 1] [--photos DIR | --no-photos]

Each round trains the default recipe for `--epochs` epochs with each thread count in turn, into a
temporary folder (data loaded once per run, as `train` does). Prints, per thread count, the median
epoch seconds from the records (an epoch includes its validation) and the process CPU seconds per
wall second from the end of the first epoch to the end of the last (about 1.0 means one core busy,
2.0 both; so --epochs must be at least 2). The runs draw the same batches whatever the thread
count, so their losses match: the script prints both, as the check.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fmnist_edge.train import loop
from fmnist_edge.train.config import PHOTOS_DIR, TrainConfig
from fmnist_edge.train.train import train


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=None, help="train on N images (default: all 55k)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--photos", type=Path, default=PHOTOS_DIR if (PHOTOS_DIR / "labels.csv").is_file() else None)
    parser.add_argument("--no-photos", action="store_true")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the cores busy are measured from the first epoch's end")
    photos = None if args.no_photos else args.photos
    cfg = replace(TrainConfig(), epochs=args.epochs, subset=args.subset)
    epochs: dict[int, list[float]] = {1: [], 2: []}
    busy: dict[int, list[float]] = {1: [], 2: []}
    losses: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for threads in (1, 2):
            loop.LOADER_THREADS = threads
            marks: list[tuple[float, float]] = []  # (wall, cpu) at the end of each epoch
            with tempfile.TemporaryDirectory() as tmp:
                record = train(cfg, Path(tmp), photos=photos, log=lambda _: None,
                               on_epoch=lambda *_, marks=marks: marks.append((time.perf_counter(), cpu_seconds())))
            epochs[threads] += [row["seconds"] for row in record.history]
            losses[threads] = [row["loss"] for row in record.history]
            busy[threads].append((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]))
    print(f"{args.epochs} epochs x {args.rounds} rounds, {'photos from ' + str(photos) if photos else 'no photos'}, "
          f"subset {args.subset or 'all'}")
    for threads in (1, 2):
        print(f"  {threads} thread(s): median epoch {statistics.median(epochs[threads]):.1f} s "
              f"(epochs {', '.join(f'{s:.1f}' for s in epochs[threads])}), "
              f"{statistics.median(busy[threads]):.2f} cores busy after epoch 1; losses {losses[threads]}")
    print(f"  epoch time, 2 threads / 1 thread: {statistics.median(epochs[2]) / statistics.median(epochs[1]):.2f}")


if __name__ == "__main__":
    main()
