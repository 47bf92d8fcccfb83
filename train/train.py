"""`fmnist-edge train`: fit the compact CNN on Fashion-MNIST with real photos mixed into every batch.

The test set is never touched here. The checkpoint is the last epoch (the end of the cosine
schedule, the shipped recipe) or, with `select="best"`, the best epoch on held-out data only: the
5k validation split of the training images and the photos' `val` split (the mean of the two
accuracies). It is written atomically after each epoch, with the record (train/record.py), so
Ctrl-C or a crash leaves the last good model in place and `resume` continues from it.

`init` starts from a trained model instead of random weights: fine-tuning a trained model on
photos for a few epochs costs a tenth of a full run.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.common.errors import ExportError
from fmnist_edge.common.lock import FolderLock
from fmnist_edge.common.provenance import git_commit, versions
from fmnist_edge.runtime.backends import cores
from fmnist_edge.runtime.errors import ModelError, UsageError
from fmnist_edge.runtime.formats import MODEL_STEM, by_name
from fmnist_edge.runtime.machine import peak_rss_mb
from fmnist_edge.runtime.manifest import sha256_file
from fmnist_edge.train import data as fmnist_data
from fmnist_edge.train.config import TrainConfig
from fmnist_edge.train.model import PARAM_LIMIT, check_buildable, count_macs
from fmnist_edge.train.photos import TRAIN_SPLIT, VAL_SPLIT, PhotoSplit, load_split, subset_of, with_variants
from fmnist_edge.train.precision import bfloat16_warning, resolve_precision
from fmnist_edge.train.record import RECORD_FILE, InputFile, PhotosUsed, TrainingRecord, read_record, write_record
from fmnist_edge.train.split import split

MODEL_FILE = by_name("keras").filename
RESUME_FILE = f"{MODEL_STEM}.last.keras"  # with select="best": the last epoch's state, for resume


@dataclass(frozen=True)
class Data:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    photos: PhotoSplit | None = None
    photos_val: PhotoSplit | None = None


class StopTraining(Exception):
    """Raised by an `on_epoch` callback to end a run after the epoch it was told about (`tune` prunes a
    trial so). That epoch's checkpoint and record are kept, the record says "interrupted", and
    `train --resume` could continue the run."""


def train(
    cfg: TrainConfig,
    out_dir: Path,
    data_dir: Path | None = None,
    force: bool = False,
    photos: Path | None = None,
    init: Path | None = None,
    log=print,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainingRecord:
    """Train and write `fmnist_cnn.keras` and its record into `out_dir`, which is locked meanwhile.

    `on_epoch(epoch, score)` is called after each epoch with its validation score (record.validation_score),
    so a caller can watch a run without parsing its log, and stop it by raising StopTraining."""
    if init is not None and not init.is_file():
        raise ModelError(f"{init}: no such model to start from")
    try:
        cfg = replace(cfg, precision=resolve_precision(cfg.precision))  # the record keeps what ran
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_precision(cfg, log)
    if cfg.photo_subset is not None and photos is None:
        raise UsageError("a photo subset needs photos to take it from (--photos)")
    if not 0.0 < cfg.photo_fraction < 1.0:
        raise UsageError(f"photo fraction {cfg.photo_fraction} must be between 0 and 1")
    if init is None:
        try:
            check_buildable(cfg.model)  # before minutes of loading data
        except ValueError as exc:
            raise UsageError(f"--stages {exc}") from None
    with _locked(out_dir):
        model_path = out_dir / MODEL_FILE
        if model_path.exists() and not force:
            raise UsageError(f"{model_path} exists; pass --force to replace it or choose another --out")
        started = time.time()
        # The code that runs is the code at start: edits made while the photos load must not be recorded as it.
        commit = git_commit(Path(__file__).resolve().parent)
        init_record = _input_file(init, out_dir)
        data, record = load_data(cfg, data_dir, photos, log)  # every input is checked before any training
        record.init, record.git_commit = init_record, commit
        record.versions = versions("tensorflow", "keras", "numpy")
        record.selection = "the last epoch" if cfg.select == "last" else (
            "val_accuracy" if data.photos is None else "mean of val_accuracy and photo_val_accuracy")
        return _fit(cfg, out_dir, data, record, started, log, start=init, on_epoch=on_epoch)


def resume(out_dir: Path, data_dir: Path | None = None, log=print) -> TrainingRecord:
    """Continue a stopped run in `out_dir` after its last finished epoch, as if it had never stopped.

    A full run outlasts some sessions and machines' uptime. Everything comes from the run's record
    (configuration, photos) and its last checkpoint (weights and the optimizer's step count and
    momentum); each epoch's shuffle is seeded by (seed, epoch), so the epochs that follow are the ones
    the uninterrupted run would have trained. The inputs must be the same bytes: the Fashion-MNIST
    files, labels.csv and every photo are hashed and compared with the record's.
    """
    with _locked(out_dir):
        record_path = out_dir / RECORD_FILE
        record = read_record(record_path)
        cfg, done = record.config, len(record.history)
        if record.status == "completed" or done >= cfg.epochs:
            raise UsageError(f"{out_dir}: that run completed all {cfg.epochs} epochs; nothing to resume")
        checkpoint = out_dir / (MODEL_FILE if cfg.select == "last" else RESUME_FILE)
        if done == 0 or not checkpoint.is_file():
            raise UsageError(f"{out_dir}: no finished epoch to resume from; start the run again")
        _check_precision(cfg, log, f"{out_dir}: the run trained in bfloat16; ")
        photos = _same_photos(record.photos)
        started = time.time() - record.wall_seconds
        commit = git_commit(Path(__file__).resolve().parent)
        data, fresh = load_data(cfg, data_dir, photos, log)
        if fresh.data_sha256 != record.data_sha256:
            raise UsageError(f"the Fashion-MNIST files differ from the ones {record_path} was trained on")
        if record.photos is not None and record.photos.photos_sha256 not in (None, fresh.photos.photos_sha256):
            raise UsageError(f"{photos}: its photos changed since the run started (labels.csv did not); "
                             "resuming would train on other data")
        record.resumed.append({"after_epoch": done, "git_commit": commit,
                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        record.status = "running"
        log(f"resuming {out_dir} after epoch {done} of {cfg.epochs}")
        return _fit(cfg, out_dir, data, record, started, log, start=checkpoint, resuming=True)


def _check_precision(cfg: TrainConfig, log, context: str = "") -> None:
    """Before any data loads: bfloat16 where TensorFlow cannot run it is one line; where it emulates it, a warning."""
    if cfg.precision != "bfloat16":
        return
    try:
        warning = bfloat16_warning()
    except ValueError as exc:
        raise UsageError(f"{context}{exc}") from None
    if warning:
        log(warning)


def _locked(out_dir: Path) -> FolderLock:
    """The run's folder, created and locked; a file in its place or an unwritable parent is one line."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; choose a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})") from None
    return _TrainLock(out_dir)


class _TrainLock(FolderLock):
    """FolderLock, refusing as a usage error (exit 2) that names training."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, holder="training run or export")

    def __enter__(self) -> _TrainLock:
        try:
            super().__enter__()
        except ExportError as exc:
            raise UsageError(str(exc)) from None
        return self


def _fit(cfg: TrainConfig, out_dir: Path, data: Data, record: TrainingRecord, started: float, log,
         start: Path | None, resuming: bool = False,
         on_epoch: Callable[[int, float], None] | None = None) -> TrainingRecord:
    """Train from `start` (None: fresh weights; a model to fine-tune; or with `resuming`, the run's checkpoint)."""
    import keras

    from fmnist_edge.train import loop

    keras.utils.set_random_seed(cfg.seed)
    if resuming:
        model, saved_optimizer = loop.resumed_model(cfg, start)
    else:
        model, saved_optimizer = loop.initial_model(cfg, start), None
        record.params, record.macs_per_image = model.count_params(), count_macs(model)
        if record.params >= PARAM_LIMIT:
            raise UsageError(f"{start}: a model of {record.params} parameters; the limit is {PARAM_LIMIT}")
    first_epoch = len(record.history)
    batches = loop.Batches(data, cfg, first_epoch=first_epoch)
    schedule, optimizer = loop.make_optimizer(cfg, len(batches))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    if saved_optimizer is not None:
        loop.restore_optimizer(optimizer, model, saved_optimizer, start, expected_step=first_epoch * len(batches))
        if cfg.ema is not None:
            loop.trade_in_training_weights(optimizer)
    if resuming and record.seed_states is not None:
        loop.restore_seed_states(model, record.seed_states, start)
    elif resuming:  # a record written before the streams were saved
        log("the record holds no dropout state: the epochs after resuming differ slightly from an uninterrupted run")
    record_path = out_dir / RECORD_FILE
    recorder = loop.Recorder(data, record, out_dir / MODEL_FILE, lambda: _save(record, record_path, started),
                             schedule, optimizer, log, keep_last=cfg.select == "last",
                             resume_path=None if cfg.select == "last" else out_dir / RESUME_FILE, on_epoch=on_epoch)
    callbacks = [recorder] if cfg.ema is None else [loop.WeightAverage(), recorder]
    if sys.stderr is not None and sys.stderr.isatty():
        callbacks.append(loop.ProgressBar(cfg.epochs - first_epoch, len(batches)))
    try:
        validation = (data.val_x[..., None].astype("float32"), loop.one_hot(data.val_y))
        model.fit(batches, shuffle=False, validation_data=validation,  # Batches orders each epoch itself
                  epochs=cfg.epochs, initial_epoch=first_epoch, callbacks=callbacks, verbose=0)
        if cfg.precision != "float32":  # the model a run ships computes in float32, whatever it trained in
            _save_in_float32(out_dir / MODEL_FILE)
        record.status = "completed"
        (out_dir / RESUME_FILE).unlink(missing_ok=True)  # a completed run has nothing left to resume
    except (KeyboardInterrupt, StopTraining):
        record.status = "interrupted"
        raise
    finally:
        _save(record, record_path, started)
    return record


def _save_in_float32(model_path: Path) -> None:
    from fmnist_edge.common.keras_model import load_keras_model

    model = load_keras_model(model_path)  # for inference: in float32, without the optimizer
    with atomic_path(model_path) as tmp:
        model.save(tmp)


def _same_photos(used: PhotosUsed | None) -> Path | None:
    """The photo folder a record names, refused unless its labels.csv still hashes as it did. It is
    looked for as it was given (relative to the folder the run is resumed from), then where it was."""
    if used is None:
        return None
    candidates = [Path(p) for p in dict.fromkeys(filter(None, (used.dir, used.absolute)))]
    present = [p for p in candidates if (p / "labels.csv").is_file()]
    if not present:
        where = f" or {used.absolute}" if used.absolute else " (resume from the folder the run started in)"
        raise UsageError(f"{Path(used.dir) / 'labels.csv'}: named by the training record but not found{where}")
    for folder in present:
        if sha256_file(folder / "labels.csv") == used.labels_sha256:
            return folder
    raise UsageError(f"{present[0] / 'labels.csv'}: changed since the run started; resuming would train on other data")


def load_data(cfg: TrainConfig, data_dir: Path | None, photos: Path | None, log) -> tuple[Data, TrainingRecord]:
    """The data a run trains on, and a new record naming (and hashing) every input that was read."""
    ds = fmnist_data.load(data_dir)
    (train_x, train_y), (val_x, val_y) = split(ds.train_images, ds.train_labels, cfg)
    record = TrainingRecord(config=cfg, train_size=len(train_x), val_size=len(val_x), data_source=str(ds.source),
                            data_sha256=ds.sha256)
    if photos is None:
        return Data(train_x, train_y, val_x, val_y), record
    log(f"preprocessing the photos in {photos} ...")
    photo_train = load_split(photos, TRAIN_SPLIT, log)
    photo_val = load_split(photos, VAL_SPLIT, log)
    readable = len(photo_train.files)
    record.photos = PhotosUsed(
        dir=str(photos), absolute=str(photos.resolve()), labels_sha256=sha256_file(photos / "labels.csv"),
        photos_sha256=photos_digest(photos, [*photo_train.files, *photo_val.files]),
        train=0, val=len(photo_val.files), unreadable=[*photo_train.unreadable, *photo_val.unreadable])
    if cfg.photo_subset is not None:
        photo_train = subset_of(photo_train, cfg.photo_subset, cfg.seed)
    if cfg.photo_variants:
        log(f"making {cfg.photo_variants} jittered variants of each training photo ...")
        photo_train = with_variants(photos, photo_train, cfg.photo_variants, cfg.seed, workers=cores())
    record.photos.train = len(photo_train.files)
    of = f" (of {readable})" if len(photo_train.files) < readable else ""
    log(f"photos: {len(photo_train.files)} train{of}, {len(photo_val.files)} val, "
        f"{len(record.photos.unreadable)} unreadable")
    return Data(train_x, train_y, val_x, val_y, photo_train, photo_val), record


def photos_digest(folder: Path, files: list[str]) -> str:
    """One SHA-256 over every photo a run reads (name and content hash, in name order): a photo
    replaced under the same name changes it, though labels.csv does not change."""
    lines = "".join(f"{sha256_file(folder / name)}  {name}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _input_file(path: Path | None, out_dir: Path) -> InputFile | None:
    """The --init model's record; refused when it lives in --out, where the run writes its own model."""
    if path is None:
        return None
    target = out_dir / MODEL_FILE
    if target.exists() and path.resolve().samefile(target):
        raise UsageError(f"--init {path} is the model this run would write in --out {out_dir}; "
                         "choose another --out (the run would overwrite its own starting point)")
    return InputFile(file=str(path), absolute=str(path.resolve()), sha256=sha256_file(path))


def _save(record: TrainingRecord, path: Path, started: float) -> None:
    record.wall_seconds = round(time.time() - started, 1)
    record.peak_rss_mb = round(max(peak_rss_mb(), record.peak_rss_mb), 1)
    write_record(record, path)

