"""`fmnist-edge tune`: the command over train/tune.py. Optuna and TensorFlow load only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_INTERRUPTED
from fmnist_edge.options import DataDir, Verbose, fail, progress, require
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError
from fmnist_edge.train.config import PHOTOS_DIR, TrainConfig
from fmnist_edge.train.tune import HEARTBEAT_SECONDS, STUDY_FILE, STUDY_NAME, TUNE_OUT

_RECIPE = TrainConfig()
DEFAULT_TRIALS = 20


@quiet_unless_verbose
def tune(
    trials: Annotated[int, typer.Option(help="Run until the study holds this many finished (complete or pruned) "
                                             "trials, counting every worker's.")] = DEFAULT_TRIALS,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of each trial (its cosine schedule's length); "
                                                    "Hyperband prunes trials from epoch 1 on.")] = _RECIPE.epochs,
    subset: Annotated[int | None, typer.Option(min=10, help="Train each trial on only N images (smoke "
                                                            "studies); validation shrinks to N/5.")] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="The seed of every trial, so that they differ "
                                      "by their settings alone.")] = _RECIPE.seed,
    photos: Annotated[Path | None, typer.Option(file_okay=False, help="Folder of labelled photos, as for train.",
                                                show_default=f"{PHOTOS_DIR} if fetch-photos put them there")
                      ] = None,
    no_photos: Annotated[bool, typer.Option("--no-photos", help="Tune on Fashion-MNIST alone.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for the trials' runs (trial-NNNN) and the default SQLite "
                                           "study.")] = TUNE_OUT,
    storage: Annotated[
        str | None, typer.Option(help="The study's database URL: sqlite:///PATH, or postgresql+psycopg://USER:"
                                      "PASSWORD@HOST/DB for workers on many machines.",
                                 show_default=f"sqlite:///OUT/{STUDY_FILE}")] = None,
    study_name: Annotated[str, typer.Option(help="The study within the storage.")] = STUDY_NAME,
    heartbeat: Annotated[int, typer.Option(min=1, max=3600, help="Seconds between a worker's heartbeats; a trial "
                                           "silent for two is failed and queued again.")] = HEARTBEAT_SECONDS,
    best: Annotated[bool, typer.Option("--best", help="Print the `fmnist-edge train` command of the study's best "
                                                      "trial, and train nothing.")] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Search the training recipe's hyperparameters with Optuna, scored on validation data only.

    Each trial trains with `train`'s code into OUT/trial-NNNN and reports its validation score (as
    `train --select best` ranks epochs: dataset validation accuracy, with photos its mean with photo
    validation accuracy) after every epoch; Hyperband stops the trailing trials early. The first
    trial is the default recipe. The study lives in --storage: the same command again continues a
    stopped study, and workers on several machines share one by giving the same PostgreSQL URL.
    `tune --best` prints the `train` command of the best trial. docs/tune.md has the search space.

    Exit codes: 0 the study holds --trials finished trials (or --best printed); 1 the Fashion-MNIST
    files are missing or corrupt; 2 usage error (a bad option or --trials, a storage URL that is
    malformed or unreachable, a study of another search space version or other settings, optuna or
    TensorFlow not installed); 130 interrupted (the stopped trial's settings are queued again).
    """
    storage_url = storage or _default_storage(out)
    try:
        if not best and trials < 1:
            raise UsageError(f"--trials {trials}: give at least 1")
        if no_photos and photos is not None:
            raise UsageError("--photos and --no-photos contradict each other; give one")
        require("optuna", "optuna", "tune")
        from fmnist_edge.train import tune as study

        if best:
            typer.echo(study.format_command(study.best_command(storage_url, study_name)))
            return
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.interrupt import StopOnSignals
        from fmnist_edge.train_commands import _photo_folder

        folder = _photo_folder(photos, no_photos)
        settings = study.Settings(epochs=epochs, subset=subset, seed=seed, photos=folder is not None,
                                  heartbeat=heartbeat)
        with StopOnSignals(raise_at_once=True):
            done = study.run(settings, trials, storage_url, study_name, out, data_dir, folder, log=progress)
        counts = study.state_counts(done)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; the same command again continues the study (the stopped trial's settings are "
                   "queued again)", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    try:
        best_line = f"best trial {done.best_trial.number}: score {done.best_value:.4f}"
    except ValueError:
        best_line = "no trial completed (all pruned or failed)"
    typer.echo(f"study {study_name!r}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
               f"{counts['FAIL']} failed; {best_line}")


def _default_storage(out: Path) -> str:
    from fmnist_edge.train.tune import default_storage

    return default_storage(out)
