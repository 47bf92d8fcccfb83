"""The commands of the training stage: `data`, `fetch-photos`, `train`.

TensorFlow is imported inside `train` only (train/loop.py at the first epoch). The defaults come
from train/config.py, which imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_INTERRUPTED
from fmnist_edge.options import DataDir, Verbose, fail, progress, require
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError
from fmnist_edge.train.config import PHOTOS_DIR, SELECTIONS, TRAIN_OUT, ModelConfig, TrainConfig
from fmnist_edge.train.model import check_buildable, format_stages, parse_stages
from fmnist_edge.train.precision import PRECISIONS, resolve_precision


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
    ] = PHOTOS_DIR,
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
_TRAINING_OPTIONS = ("epochs", "seed", "seeds", "stages", "photos", "no_photos", "photo_fraction", "init", "lr",
                     "weight_decay", "label_smoothing", "ema", "erase_prob", "alternate_flip", "dropout", "residual",
                     "freeze_bn", "select", "subset", "photo_subset", "batch_size", "precision", "force")
_RECIPE = TrainConfig()  # every default below is read from here, never typed twice


def _one_of_precisions(value: str) -> str:
    if value not in PRECISIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(PRECISIONS)}")
    return value


def _one_of_selections(value: str) -> str:
    """--select's check without importing click (the base install's typer may vendor it)."""
    if value not in SELECTIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(SELECTIONS)}")
    return value


@quiet_unless_verbose
def train(
    ctx: typer.Context,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = _RECIPE.epochs,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seeds the split, the initial weights and "
                                      "augmentation.")] = _RECIPE.seed,
    out: Annotated[Path, typer.Option(help="Folder for fmnist_cnn.keras and its training record (locked while "
                                           "the run writes).")] = TRAIN_OUT,
    stages: Annotated[
        str | None,
        typer.Option(metavar="CHANNELS", help="The network's shape: channels per 3x3 conv, commas within a stage, "
                     "slashes between stages (2x2 max-pooling between them), e.g. 32/64,64/128,128,128. "
                     f"Default: {format_stages(_RECIPE.model.stages)}. Under 500,000 parameters, at most 5 stages.")
    ] = None,
    photos: Annotated[
        Path | None,
        typer.Option(help="Folder of labelled photos (labels.csv with a split column): the `train` photos are "
                          "mixed into every batch, the `val` photos score each epoch.", file_okay=False,
                     show_default=f"{PHOTOS_DIR} if fetch-photos put them there"),
    ] = None,
    no_photos: Annotated[bool, typer.Option("--no-photos", help="Train on Fashion-MNIST alone.")] = False,
    photo_fraction: Annotated[
        float, typer.Option(min=0.01, max=0.9, help="Share of each batch that is photos.")
    ] = _RECIPE.photo_fraction,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained .keras model (fine-tuning) instead of random "
                                       "weights; it must take 28x28x1 pixels and give 10 scores.", dir_okay=False)
    ] = None,
    lr: Annotated[float, typer.Option(min=1e-6, max=1.0, help="Peak learning rate (SGD, cosine schedule).")
                  ] = _RECIPE.peak_lr,
    weight_decay: Annotated[float, typer.Option(min=0.0, max=0.1, help="Decoupled weight decay (not on BatchNorm "
                                                "or biases).")] = _RECIPE.weight_decay,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=0.5, help="Label smoothing of the loss (it also "
                                                   "shapes the unsure threshold).")] = _RECIPE.label_smoothing,
    ema: Annotated[float | None, typer.Option(min=0.5, max=0.99999, help="Keep a moving average of the weights "
                                              "(this momentum per step, e.g. 0.999) and ship it instead of the "
                                              "last weights; validation scores the average.")] = _RECIPE.ema,
    erase_prob: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance that a dataset image gets a random "
                                              "erasing.")] = _RECIPE.augment.erase_prob,
    alternate_flip: Annotated[bool, typer.Option(help="Mirror each dataset image on alternate epochs (the first "
                                                 "epoch's at random) instead of by a coin flip each epoch.")
                              ] = _RECIPE.augment.alternate_flip,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Dropout before the classifier (a new "
                                           "network; --init keeps its own).")] = _RECIPE.model.dropout,
    residual: Annotated[bool, typer.Option(help="Identity shortcuts around each conv that keeps its stage's width "
                                           "(a new network; --init keeps its own).")] = _RECIPE.model.residual,
    freeze_bn: Annotated[
        bool, typer.Option(help="With --init: keep the starting model's BatchNorm statistics (protects "
                                "dataset accuracy while photos are mixed in).")
    ] = True,
    select: Annotated[
        str, typer.Option(callback=_one_of_selections,
                          help="Which epoch is kept: `last` (the end of the cosine schedule: the shipped recipe) or "
                               "`best` on validation data (the mean of dataset and photo validation accuracy).")
    ] = _RECIPE.select,
    subset: Annotated[
        int | None,
        typer.Option(min=10, help="Train on only N images (smoke runs); validation shrinks to N/5."),
    ] = None,
    photo_subset: Annotated[
        int | None,
        typer.Option(min=1, help="Train on only N of the `train` photos, each class keeping its share (a "
                                 "learning curve: what would more photos buy?). `val` stays whole.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2, max=4096, help="Images per step, photos included.")
                          ] = _RECIPE.batch_size,
    precision: Annotated[
        str, typer.Option(callback=_one_of_precisions,
                          help="What the network computes in while it trains: `auto` is bfloat16 on a CPU with "
                               "AVX-512 BF16 or AMX (epochs about 1.4x faster there), else float32. The model written "
                               "computes in float32 either way.")
    ] = _RECIPE.precision,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the stopped run in --out after its last finished epoch, with "
                           "the settings and photos its record names; the Fashion-MNIST files, labels.csv and every "
                           "photo are checked against the record's hashes (give no other training option).")
    ] = False,
    seeds: Annotated[
        str | None,
        typer.Option(metavar="N,N,...", help="One run per seed, each into OUT/seed-N, then a table of the mean and "
                     "sd of the test accuracy of the float Keras and the int8 TFLite model (also OUT/seeds.json). "
                     "The same command again resumes what is unfinished.")
    ] = None,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Train the compact CNN on Fashion-MNIST and real photos (never on the test set).

    With no options this is the shipped recipe: 48 epochs from scratch, a tenth of each batch real
    photos from data/photos-train (`fmnist-edge fetch-photos` puts them there), the last epoch kept;
    about 70 minutes on 2 cores in float32, about 0.72x that where bfloat16 is native (--precision).
    Without the photos it says so and trains on Fashion-MNIST alone. Fine-tune instead with `--init
    MODEL --epochs 5 --lr 0.02`. A bad labels file or a missing photo stops before training starts; an
    unreadable photo is skipped and counted in the training record. A stopped run continues with
    `fmnist-edge train --resume --out DIR`.

    `--seeds 0,1,2` trains one run per seed into OUT/seed-N and prints the mean ± sd of the test
    accuracy of the float and the int8 TFLite models (written to OUT/seeds.json too); the same command
    again resumes the unfinished seeds and refuses a folder trained with other settings.

    Exit codes: 0 trained; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (bad
    option, a bad --photos folder or --init model, a model in --out without --force, --out locked
    by another run, a record --resume cannot read, TensorFlow not installed); 130 interrupted.
    """
    if resume:
        # By the source's name: typer's click (its own or vendored, by version) has the enum in other modules.
        given = [name for name in _TRAINING_OPTIONS if ctx.get_parameter_source(name).name != "DEFAULT"]
        if given:
            names = ", ".join("--" + name.replace("_", "-") for name in given)
            raise fail(FmnistEdgeError(f"--resume takes every setting from the run's record; drop {names}"))
    try:
        if no_photos and photos is not None:
            raise UsageError("--photos and --no-photos contradict each other; give one")
        model = _RECIPE.model if stages is None else ModelConfig(stages=_stages(stages, init))
        cfg = replace(_RECIPE, model=replace(model, dropout=dropout, residual=residual), epochs=epochs, seed=seed,
                      subset=subset, photo_subset=photo_subset, batch_size=batch_size, peak_lr=lr,
                      photo_fraction=photo_fraction, weight_decay=weight_decay, label_smoothing=label_smoothing,
                      ema=ema, augment=replace(_RECIPE.augment, erase_prob=erase_prob, alternate_flip=alternate_flip),
                      warmup_epochs=0.0 if init else _RECIPE.warmup_epochs,
                      freeze_batchnorm=freeze_bn and init is not None, select=select,
                      precision=resolve_precision(precision))
        if seeds is not None:
            from fmnist_edge.seeds import parse_seeds, train_seeds

            if ctx.get_parameter_source("seed").name != "DEFAULT":
                raise UsageError("--seed and --seeds contradict each other; give one")
            if init is not None:
                raise UsageError("--seeds trains from scratch; --init fine-tunes one model")
            seed_list = parse_seeds(seeds)
        require("tensorflow", "tensorflow", "train")
        if not resume:
            photos = _photo_folder(photos, no_photos)
        if seeds is not None:
            raise typer.Exit(train_seeds(cfg, seed_list, out, data_dir=data_dir, photos=photos, force=force))
        from fmnist_edge.interrupt import StopOnSignals
        from fmnist_edge.train.train import resume as resume_training
        from fmnist_edge.train.train import train as run_training

        with StopOnSignals(raise_at_once=True):  # SIGTERM stops as Ctrl-C does: the record says "interrupted"
            if resume:
                record = resume_training(out, data_dir=data_dir, log=progress)
            else:
                record = run_training(cfg, out, data_dir=data_dir, force=force, photos=photos, init=init,
                                      log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the checkpoint so far (if any) is in {out}; "
                   f"`fmnist-edge train --resume --out {out}` continues the run", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    photo = (f", photo val {record.best_photo_val_accuracy:.4f}" if record.best_photo_val_accuracy is not None
             else "")
    typer.echo(
        f"{record.config.select} epoch {record.best_epoch}: val accuracy {record.best_val_accuracy:.4f}{photo}; "
        f"{record.params} params, {(record.macs_per_image or 0) / 1e6:.1f} M MACs/image; "
        f"{record.wall_seconds / 60:.1f} min, peak RSS {record.peak_rss_mb:.0f} MB -> {out}"
    )


def _photo_folder(given: Path | None, no_photos: bool) -> Path | None:
    """--photos, else the folder fetch-photos fills when it holds the photos, else none (said in one line)."""
    if no_photos or given is not None:
        return given
    if (PHOTOS_DIR / "labels.csv").is_file():
        progress(f"photos: {PHOTOS_DIR} (the default); --no-photos trains on Fashion-MNIST alone")
        return PHOTOS_DIR
    progress(f"no photos in {PHOTOS_DIR}: training on Fashion-MNIST alone, which reads real photos far worse; "
             "`fmnist-edge fetch-photos` downloads them there")
    return None


def _stages(text: str, init: Path | None) -> tuple[tuple[int, ...], ...]:
    if init is not None:
        raise UsageError("--stages shapes a new network; --init continues a trained one in its own shape")
    try:
        shape = parse_stages(text)
        check_buildable(ModelConfig(stages=shape))  # before the photo line and the data: nothing else to say
    except ValueError as exc:
        raise UsageError(f"--stages {exc}") from None
    return shape
