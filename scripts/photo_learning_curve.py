"""What more training photos would buy: short photo runs on nested subsets of the `train` photos,
scored on the whole `val` split.

    python scripts/photo_learning_curve.py PHOTOS --out runs/curve [--sizes 68,137,274,549]
        [--seeds 0,1] [--epochs 5]

Why it exists: photo accuracy on new photographers stalls below its target whatever the schedule or
the network, while the model fits its training photos almost perfectly. If the number of photos is
the limit, accuracy on `val` grows with it; this measures how fast (percentage points per doubling,
a least-squares line through every run) and so roughly how many photos a target needs. Each point
is `fmnist-edge train --photos PHOTOS --photo-subset N --epochs E --seed S --select last`, a short
schedule (5 epochs reach most of a 40-epoch run's photo accuracy), so read the figures as a trend,
not as what a full run on that many photos would score. A finished run is not trained again:
rerunning the command after an interruption continues with the missing runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from fmnist_edge.train.record import RECORD_FILE


def numbers(text: str) -> list[int]:
    """argparse's type for a comma-separated list of whole numbers."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas") from None
    return values


def finished(run: Path) -> dict | None:
    try:
        record = json.loads((run / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "completed" else None


def train(photos: Path, run: Path, size: int, seed: int, epochs: int) -> dict:
    command = [sys.executable, "-m", "fmnist_edge", "train", "--photos", str(photos), "--photo-subset", str(size),
               "--epochs", str(epochs), "--seed", str(seed), "--select", "last", "--out", str(run), "--force"]
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    record = finished(run)
    if record is None:
        raise SystemExit(f"{run}: the run did not complete")
    return record


def slope_per_doubling(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least-squares line of accuracy against log2(photos): (points per doubling, its standard
    error, intercept). With 151 `val` photos one run's accuracy is noisy by about 4 points, so the
    slope means something only where it stands clear of its error."""
    xs = [math.log2(n) for n, _ in points]
    ys = [acc for _, acc in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    error = math.sqrt(residual / (len(xs) - 2) / sxx) if len(xs) > 2 else math.inf
    return slope, error, intercept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="A photo folder with a labels.csv (train and val splits).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for one run folder per point.")
    parser.add_argument("--sizes", type=numbers, default=[68, 137, 274, 549], help="Training photos per run.")
    parser.add_argument("--seeds", type=numbers, default=[0, 1], help="Seeds: the subset, weights and batches.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.75, help="Accuracy on `val` to estimate photos for.")
    args = parser.parse_args()

    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            run = args.out / f"n{size}-s{seed}"
            record = finished(run) or train(args.photos, run, size, seed, args.epochs)
            last = record["history"][-1]
            rows.append((record["photos"]["train"], seed, last["photo_val_accuracy"], last["val_accuracy"],
                         record["wall_seconds"]))

    print("\n| training photos | seed | `val` photos | dataset validation | minutes |")
    print("|---:|---:|---:|---:|---:|")
    for photos, seed, photo_val, val, seconds in rows:
        print(f"| {photos} | {seed} | {photo_val:.1%} | {val:.2%} | {seconds / 60:.1f} |")
    if len({photos for photos, *_ in rows}) < 2:
        return
    slope, error, intercept = slope_per_doubling([(photos, photo_val) for photos, _, photo_val, *_ in rows])
    print(f"\n`val` photos: {slope * 100:+.1f} ± {error * 100:.1f} points per doubling of the training photos "
          f"(least squares over {len(rows)} runs, ± one standard error)")
    if slope > 2 * error:
        needed = 2 ** ((args.target - intercept) / slope)
        print(f"the line reaches {args.target:.0%} at about {needed:.0f} training photos (an extrapolation)")
    else:
        print("the slope is not clearly above zero (under two standard errors): at this schedule more photos "
              "like these buy little, and no number of photos for the target can be read off the line")

if __name__ == "__main__":
    main()
