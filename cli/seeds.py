"""`fmnist-edge train --seeds 0,1,2`: one run of the recipe per seed, then the mean and sd of the test
accuracy of the float Keras model and of its int8 TFLite conversion.

Why: one run's accuracy is one draw; a recipe is judged by the spread of several seeds. This lives
in the command line because it needs both stages: train/ trains, export/ converts (train/ may not
import export/).

Resuming, chosen so that a long multi-seed run survives a stop: the same command again goes through
the seeds in order and, in each OUT/seed-N, keeps a completed run whose record has this very
configuration, resumes a stopped one after its last epoch (`train --resume`, bit-identical), and
trains one that never finished an epoch. A folder whose record has other settings is refused (one
line), unless --force retrains every seed. Each seed's test figures are kept in its folder
(test_accuracy.json, with the SHA-256 of the model they were measured on), so a rerun after the
last seed only re-prints the table. The test set is read here for reporting only: no setting is
chosen on it.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import typer

from fmnist_edge.exits import EXIT_INTERRUPTED, EXIT_OK
from fmnist_edge.options import progress
from fmnist_edge.runtime.errors import UsageError
from fmnist_edge.train.config import TrainConfig

SUMMARY_FILE = "seeds.json"
SEED_FILE = "test_accuracy.json"  # in each OUT/seed-N
MAX_SEEDS = 100


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else (a repeat, a negative or non-number, none) is one UsageError line."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    if not seeds or any(not 0 <= s < 2**32 for s in seeds):
        raise UsageError(f"--seeds {text!r}: give seeds from 0 to 2**32 - 1 separated by commas, e.g. 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: a seed is repeated; each seed is one run")
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"--seeds: {len(seeds)} seeds; at most {MAX_SEEDS}")
    return seeds


def train_seeds(cfg: TrainConfig, seeds: list[int], out: Path, data_dir: Path | None, photos: Path | None,
                force: bool) -> int:
    """Train (or resume) each seed's run, measure it on the test set, print the table and write
    OUT/seeds.json; returns the exit code (130 when stopped: a rerun resumes)."""
    from fmnist_edge.interrupt import StopOnSignals

    rows = []
    with StopOnSignals(raise_at_once=True):  # SIGTERM stops as Ctrl-C does: the stopped run's record says so
        try:
            for seed in seeds:
                folder = out / f"seed-{seed}"
                _train_one(replace(cfg, seed=seed), folder, data_dir, photos, force)
                rows.append({"seed": seed, "folder": str(folder), **_test_accuracies(folder, data_dir)})
        except KeyboardInterrupt:
            typer.echo(f"interrupted; the same command again resumes in {out}: finished seeds are kept, "
                       "the stopped one continues after its last epoch", err=True)
            return EXIT_INTERRUPTED
    summary = summarize(rows, cfg)
    from fmnist_edge.common.atomic import write_text_atomic

    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    for line in table(summary):
        typer.echo(line)
    progress(f"-> {out / SUMMARY_FILE}")
    return EXIT_OK


def _train_one(cfg: TrainConfig, folder: Path, data_dir: Path | None, photos: Path | None, force: bool) -> None:
    """Train the seed's run, resume it, or keep it, as the module docstring says."""
    from fmnist_edge.train.record import RECORD_FILE, read_record
    from fmnist_edge.train.train import resume, train

    record_path = folder / RECORD_FILE
    if force or not record_path.is_file():
        progress(f"seed {cfg.seed}: training into {folder}")
        train(cfg, folder, data_dir=data_dir, force=force, photos=photos, log=progress)
        return
    record = read_record(record_path)
    if record.config != cfg or (record.photos is None) != (photos is None):
        raise UsageError(f"{folder} holds a run with other settings than these; give the options it was started "
                         "with, --force to retrain every seed, or another --out")
    if record.status == "completed":
        progress(f"seed {cfg.seed}: trained already in {folder}")
    elif record.history:
        resume(folder, data_dir=data_dir, log=progress)
    else:  # stopped within its first epoch: nothing to resume from
        train(cfg, folder, data_dir=data_dir, photos=photos, log=progress)


def _test_accuracies(folder: Path, data_dir: Path | None) -> dict[str, Any]:
    """Test accuracy of the seed's Keras model and of its int8 TFLite conversion (export's converter
    and calibration images); kept in the folder with the model's hash, so a rerun re-uses them."""
    from fmnist_edge.common.atomic import write_text_atomic
    from fmnist_edge.runtime.formats import by_name
    from fmnist_edge.runtime.manifest import sha256_file

    model_path = folder / by_name("keras").filename
    digest = sha256_file(model_path)
    kept = folder / SEED_FILE
    if kept.is_file():
        try:
            saved = json.loads(kept.read_text(encoding="utf-8"))
            if saved.get("keras_sha256") == digest:
                return {k: saved[k] for k in ("float_test_accuracy", "int8_test_accuracy")}
        except (ValueError, KeyError, AttributeError):
            pass  # unreadable: measured again and replaced
    progress(f"measuring {model_path} and its int8 TFLite conversion on the 10k test images ...")
    measured = _measure(model_path, data_dir)
    write_text_atomic(kept, json.dumps({"keras_sha256": digest, **measured}, indent=2) + "\n")
    return measured


def _measure(model_path: Path, data_dir: Path | None) -> dict[str, float]:
    import numpy as np

    from fmnist_edge.common.keras_model import load_keras_model
    from fmnist_edge.export import convert
    from fmnist_edge.export.options import ExportOptions
    from fmnist_edge.export.pipeline import calibration_images
    from fmnist_edge.runtime.backends import load_backend, run_batched
    from fmnist_edge.runtime.formats import by_name
    from fmnist_edge.train import data as fmnist_data

    ds = fmnist_data.load(data_dir)
    pixels, labels = ds.test_images[..., None], ds.test_labels
    model = load_keras_model(model_path)
    scores = run_batched(lambda x: model(x.astype(np.float32), training=False).numpy(), pixels)
    options = ExportOptions()
    calibration = calibration_images(ds.train_images, options.calibration_size, options.seed)
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-seeds-") as tmp:
        int8_path = Path(tmp) / by_name("tflite-int8").filename
        int8_path.write_bytes(convert.tflite_int8(convert.saved_model(model, Path(tmp) / "saved_model"), calibration))
        int8_scores = run_batched(load_backend(int8_path).run, pixels)
    return {"float_test_accuracy": float((scores.argmax(1) == labels).mean()),
            "int8_test_accuracy": float((int8_scores.argmax(1) == labels).mean())}


def summarize(rows: list[dict[str, Any]], cfg: TrainConfig) -> dict[str, Any]:
    """The JSON written to OUT/seeds.json: each seed's figures, and per model the mean and the sample
    standard deviation (n - 1; null for one seed) over the seeds."""
    summary: dict[str, Any] = {"config": {k: v for k, v in asdict(cfg).items() if k != "seed"}, "seeds": rows}
    for name in ("float", "int8"):
        values = [row[f"{name}_test_accuracy"] for row in rows]
        summary[name] = {"mean": statistics.fmean(values),
                         "sd": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}
    return summary


def table(summary: dict[str, Any]) -> list[str]:
    """The printed table: one row per seed, then mean ± sd, in percent."""
    lines = [f"{'seed':>10}  {'float Keras':>16}  {'int8 TFLite':>16}"]
    for row in summary["seeds"]:
        lines.append(f"{row['seed']:>10}  {100 * row['float_test_accuracy']:>15.2f}%  "
                     f"{100 * row['int8_test_accuracy']:>15.2f}%")

    def spread(stats: dict[str, Any]) -> str:
        sd = "n/a" if stats["sd"] is None else f"{100 * stats['sd']:.2f}"
        return f"{100 * stats['mean']:.2f} ± {sd}%"

    lines.append(f"{'mean ± sd':>10}  {spread(summary['float']):>16}  {spread(summary['int8']):>16}")
    return lines
