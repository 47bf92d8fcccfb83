"""The commands of the training stage: `data`, `fetch-photos`, `train`, `blend`.

TensorFlow is imported inside `train` and `blend` only (train/loop.py at the first epoch).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_INTERRUPTED
from fmnist_edge.options import TRAIN_OUT, DataDir, Verbose, fail, progress, require
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError


class Selection(str, Enum):
    best = "best"
    last = "last"


def data(data_dir: DataDir = None) -> None:
    """Find Fashion-MNIST, verify the four files' checksums and print the class counts.

    Looks in --data-dir (or $FMNIST_EDGE_DATA), the user cache ($XDG_CACHE_HOME/fmnist-edge, by
    default ~/.cache/fmnist-edge), then Debian's /usr/share/datasets/fashion-mnist; failing those,
    downloads the four files (30 MB) into the cache from the official mirror. $FMNIST_EDGE_MIRROR
    replaces that mirror with a base URL holding the four .gz files under their official names. A
    file is kept only if its content passes its SHA-256; each download has a size cap and a
    deadline, and Ctrl-C leaves no partial file.

    Exit codes: 0 found and verified; 1 a file is missing, corrupt or cannot be downloaded; 2 usage
    error (bad option); 130 interrupted.
    """
    import numpy as np

    from fmnist_edge.interrupt import StopOnSignals
    from fmnist_edge.runtime.spec import CLASS_NAMES
    from fmnist_edge.train import data as fmnist_data

    try:
        with StopOnSignals(raise_at_once=True):  # SIGTERM unwinds like Ctrl-C: no temp file is left
            ds = fmnist_data.load(data_dir)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing was kept of an unfinished download", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"found: {ds.source}")
    for name, digest in ds.sha256.items():
        typer.echo(f"  sha256 ok  {name}  {digest[:16]}…")
    typer.echo(f"train: {ds.train_images.shape}  test: {ds.test_images.shape}")
    train_counts = np.bincount(ds.train_labels, minlength=10)
    test_counts = np.bincount(ds.test_labels, minlength=10)
    typer.echo(f"  {'class':<12} {'train':>6} {'test':>6}")
    for i, name in enumerate(CLASS_NAMES):
        typer.echo(f"  {name:<12} {train_counts[i]:>6} {test_counts[i]:>6}")


def fetch_photos_cmd(
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Folder for the photos and their labels.csv.")
    ] = Path("data/photos-train"),
) -> None:
    """Download the 700 labelled training photos (549 train, 151 val) for `train --photos`.

    The photos come from github.com/alexeygrigorev/clothing-dataset, licensed CC0 1.0 (free for any
    use), at the pinned commit 7ed86a9cc56763b6acb35e41cb35184e43a5d218. Each original is checked
    against the SHA-256 in the labels file shipped with fmnist-edge, then made as the project's own
    copy was (EXIF orientation, RGB, at most 512 px, JPEG). A rerun fetches only what is missing.
    Pass the resulting folder to `fmnist-edge train --photos` or `evaluate-photos`.
    $FMNIST_EDGE_PHOTOS_MIRROR replaces the GitHub address with a mirror holding the same paths
    (`<mirror>/images/<id>.jpg`). Each download has a size cap and a deadline, and Ctrl-C leaves no
    partial file.

    Exit codes: 0 all photos ready; 1 a photo cannot be downloaded, fails its SHA-256 or cannot be
    written, or the folder's labels.csv differs from the shipped one; 2 usage error (bad option);
    130 interrupted (a rerun resumes).
    """
    from fmnist_edge.interrupt import StopOnSignals
    from fmnist_edge.train.photo_data import fetch_photos

    try:
        with StopOnSignals(raise_at_once=True):  # SIGTERM unwinds like Ctrl-C: no temp file is left
            folder = fetch_photos(out, log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the command again to resume into {out}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"photos ready: fmnist-edge train --photos {folder}")


# What --resume reads from the run's record instead; giving one of them with --resume is refused.
_TRAINING_OPTIONS = ("epochs", "seed", "stages", "photos", "photo_fraction", "init", "lr", "freeze_bn", "teacher",
                     "distill", "select", "subset", "photo_subset", "batch_size", "force")


@quiet_unless_verbose
def train(
    ctx: typer.Context,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = 40,
    seed: Annotated[int, typer.Option(help="Seeds the split, the initial weights and augmentation.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for fmnist_cnn.keras and its training record.")] = TRAIN_OUT,
    stages: Annotated[
        str | None,
        typer.Option(metavar="CHANNELS", help="The network's shape: channels per 3x3 conv, commas within a stage, "
                     "slashes between stages (2x2 max-pooling between them), e.g. 32/64,64/128,128,128. "
                     "Default: the shipped model's. Must stay under 500,000 parameters.")
    ] = None,
    photos: Annotated[
        Path | None,
        typer.Option(help="Folder of labelled photos (labels.csv with a split column): the `train` photos are "
                          "mixed into every batch, the `val` photos score each epoch.", file_okay=False),
    ] = None,
    photo_fraction: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of each batch that is photos.")] = 0.1,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained .keras model (fine-tuning) instead of random weights.")
    ] = None,
    lr: Annotated[float, typer.Option(min=1e-6, max=1.0, help="Peak learning rate (SGD, cosine schedule).")] = 0.1,
    freeze_bn: Annotated[
        bool, typer.Option(help="With --init: keep the starting model's BatchNorm statistics (protects "
                                "dataset accuracy while photos are mixed in).")
    ] = True,
    teacher: Annotated[
        Path | None, typer.Option(help="A trained .keras model to learn from (distillation): the Fashion-MNIST "
                                       "images' targets mix the label with its answers, by --distill. With --init "
                                       "and no --teacher, the starting model teaches.", dir_okay=False)
    ] = None,
    distill: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --teacher or --init: the weight of the teacher's "
                            "probabilities in the Fashion-MNIST images' targets (0 turns distillation off). "
                            "Fine-tuning with it learns the photos without forgetting the dataset.")
    ] = 0.5,
    select: Annotated[
        Selection, typer.Option(help="Which epoch is kept: `best` on validation data (the mean of dataset and photo "
                               "validation accuracy, with --photos), or `last` (the end of the cosine schedule).")
    ] = Selection.best,
    subset: Annotated[
        int | None,
        typer.Option(min=10, help="Train on only N images (smoke runs); validation shrinks to N/5."),
    ] = None,
    photo_subset: Annotated[
        int | None,
        typer.Option(min=1, help="With --photos: train on only N of the `train` photos, each class keeping its "
                                 "share (a learning curve: what would more photos buy?). `val` stays whole.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the stopped run in --out after its last finished epoch, with the "
                                "settings, photos and teacher its record names (give no other training option).")
    ] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Train the compact CNN on Fashion-MNIST, and with --photos on real photos too (never on the test set).

    The shipped model: `fmnist-edge train --photos PHOTOS --select last` (40 epochs from scratch, a tenth
    of each batch real photos; 65 to 100 minutes on 2 cores; `fetch-photos` gets PHOTOS). Without
    --photos it trains on Fashion-MNIST alone. Fine-tune instead with `--init MODEL --photos PHOTOS
    --epochs 5 --lr 0.02` (see the README for what each costs). With --photos, a bad labels file or a
    missing photo stops before training starts; an unreadable photo is skipped and counted in the
    training record. `--teacher MODEL` distills a trained model's answers into the dataset targets.
    A stopped run continues with `fmnist-edge train --resume --out DIR`.

    Exit codes: 0 trained; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (bad
    option, a bad --photos folder, a model in --out without --force, TensorFlow not installed); 130 interrupted.
    """
    if resume:
        # By the source's name: typer's click (its own or vendored, by version) has the enum in other modules.
        given = [name for name in _TRAINING_OPTIONS if ctx.get_parameter_source(name).name != "DEFAULT"]
        if given:
            names = ", ".join("--" + name.replace("_", "-") for name in given)
            raise fail(FmnistEdgeError(f"--resume takes every setting from the run's record; drop {names}"))
    try:
        shape = None if stages is None else _stages(stages, init)
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.train.model import ModelConfig
        from fmnist_edge.train.train import TrainConfig
        from fmnist_edge.train.train import resume as resume_training
        from fmnist_edge.train.train import train as run_training

        if resume:
            record = resume_training(out, data_dir=data_dir, log=progress)
            select = Selection(record["config"]["select"])

        else:
            model = ModelConfig() if shape is None else ModelConfig(stages=shape)
            cfg = TrainConfig(model=model, epochs=epochs, seed=seed, subset=subset, photo_subset=photo_subset,
                              batch_size=batch_size, peak_lr=lr,
                              photo_fraction=photo_fraction, warmup_epochs=0.0 if init else 1.0,
                              freeze_batchnorm=freeze_bn and init is not None,
                              distill=distill if init is not None or teacher is not None else 0.0,
                              select=select.value)
            record = run_training(cfg, out, data_dir=data_dir, force=force, photos=photos, init=init,
                                  teacher=teacher, log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the checkpoint so far (if any) is in {out}; "
                   f"`fmnist-edge train --resume --out {out}` continues the run", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    photo = (f", photo val {record['best_photo_val_accuracy']:.4f}"
             if record.get("best_photo_val_accuracy") is not None else "")
    typer.echo(
        f"{'last' if select is Selection.last else 'best'} epoch {record['best_epoch']}: "
        f"val accuracy {record['best_val_accuracy']:.4f}{photo}; "
        f"{record['params']} params, {record['macs_per_image'] / 1e6:.1f} M MACs/image; "
        f"{record['wall_seconds'] / 60:.1f} min, peak RSS {record['peak_rss_mb']:.0f} MB -> {out}"
    )


def _stages(text: str, init: Path | None) -> tuple[tuple[int, ...], ...]:
    from fmnist_edge.train.model import parse_stages

    if init is not None:
        raise UsageError("--stages shapes a new network; --init continues a trained one in its own shape")
    try:
        return parse_stages(text)
    except ValueError as exc:
        raise UsageError(f"--stages {exc}") from None


@quiet_unless_verbose
def blend(
    start: Annotated[Path, typer.Argument(help="The model fine-tuning started from (train --init).")],
    tuned: Annotated[Path, typer.Argument(help="The fine-tuned model; its training record is read from beside it.")],
    photos: Annotated[Path, typer.Option(help="Labelled photos with a `val` split (as given to train --photos).",
                                         file_okay=False, exists=True)],
    out: Annotated[Path, typer.Option(help="Folder for the blended fmnist_cnn.keras and its record.")],
    max_drop: Annotated[float, typer.Option(min=0.0, max=0.05, help="How much dataset validation accuracy (a "
                                            "fraction) the blend may lose against START.")] = 0.002,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Average a fine-tuned model's weights with its starting model's (WiSE-FT), picking the mix on validation data.

    Tries (1 - a) * START + a * TUNED for a = 0, 0.1, ..., 1 and keeps the one with the best photo
    validation accuracy among those whose dataset validation accuracy is within --max-drop of
    START's. The test set is not used. The record beside the result says which a was chosen, and why.

    Exit codes: 0 written; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (missing or
    mismatched models, a bad --photos folder, a model in --out without --force, TensorFlow not installed).
    """
    try:
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.train.blend import blend as run_blend

        record = run_blend(start, tuned, photos, out, max_drop=max_drop, data_dir=data_dir, force=force,
                           log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    chosen = record["blend"]
    typer.echo(f"a = {chosen['alpha']:.1f}: val {chosen['val_accuracy']:.4f}, photo val "
               f"{chosen['photo_val_accuracy']:.4f} -> {out}")
