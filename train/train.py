"""`fmnist-edge train`: fit the compact CNN, optionally with real photos mixed into every batch.

The test set is never touched here. The best epoch is chosen on held-out data only: the 5k
validation split of the training images and, with `--photos`, the photos' `val` split (by the
mean of the two accuracies, since the photos are the harder and the noisier of the two). The
best checkpoint is written atomically whenever that score improves, so Ctrl-C or a crash leaves
the last good model in place.

`--init MODEL` starts from a trained model instead of random weights: fine-tuning a dataset-trained
model on photos for a few epochs costs a tenth of a full run. `--teacher MODEL` (distillation) mixes
a trained model's answers into the dataset images' targets: a photo-trained model learns the
photos from the labels and keeps the dataset model's sense of which garments look alike.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import write_text_atomic
from fmnist_edge.common.keras_model import TRAINING_RECORD, load_keras_model
from fmnist_edge.runtime.backends import cores
from fmnist_edge.runtime.errors import FmnistEdgeError, ModelError
from fmnist_edge.runtime.formats import MODEL_STEM, by_name
from fmnist_edge.runtime.machine import peak_rss_mb
from fmnist_edge.train import data as fmnist_data
from fmnist_edge.train.augment import AugmentConfig
from fmnist_edge.train.model import PARAM_LIMIT, ModelConfig, count_macs, format_stages, param_count
from fmnist_edge.train.photo_augment import PhotoAugmentConfig
from fmnist_edge.train.photos import TRAIN_SPLIT, VAL_SPLIT, PhotoSplit, load_split, subset_of, with_variants
from fmnist_edge.train.provenance import git_commit, versions

MODEL_FILE = by_name("keras").filename
RECORD_FILE = TRAINING_RECORD
RESUME_FILE = f"{MODEL_STEM}.last.keras"  # with --select best: the last epoch's state, for --resume


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 128
    peak_lr: float = 0.1  # SGD with Nesterov momentum, linear warm-up then cosine to zero
    warmup_epochs: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4  # decoupled; not applied to BatchNorm or biases
    label_smoothing: float = 0.1
    val_size: int = 5000
    seed: int = 0
    subset: int | None = None  # train on the first N shuffled images (smoke runs)
    jit_compile: bool = False  # XLA on the CPU: 1.6x the CPU time per step of TF's oneDNN kernels (measured)
    photo_fraction: float = 0.1  # of each batch, when training with photos
    photo_subset: int | None = None  # train on N of the training photos, by class share (learning curves)
    photo_variants: int = 8  # jittered re-preprocessings of each training photo (train/photos.py)
    freeze_batchnorm: bool = False  # fine-tuning (--init): keep the BatchNorm statistics of the model we start from
    distill: float = 0.0  # weight of the teacher's answers (--teacher, or the --init model) in the dataset targets
    select: str = "best"  # "best": the checkpoint is the best epoch on validation data; "last": the final epoch
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    photo_augment: PhotoAugmentConfig = field(default_factory=PhotoAugmentConfig)


@dataclass(frozen=True)
class Data:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    photos: PhotoSplit | None = None
    photos_val: PhotoSplit | None = None


def split(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig):
    """Fixed-seed split of the training set into (train, validation)."""
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.subset is not None:
        train_idx = train_idx[: cfg.subset]
        val_idx = val_idx[: max(1, min(cfg.val_size, cfg.subset // 5))]
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def train(
    cfg: TrainConfig,
    out_dir: Path,
    data_dir: Path | None = None,
    force: bool = False,
    photos: Path | None = None,
    init: Path | None = None,
    teacher: Path | None = None,
    log=print,
) -> dict:
    """Train and write `fmnist_cnn.keras` (the best epoch) and its JSON record beside it."""
    model_path = out_dir / MODEL_FILE
    if model_path.exists() and not force:
        raise FmnistEdgeError(f"{model_path} exists; pass --force to replace it or choose another --out")
    if init is not None and not init.is_file():
        raise ModelError(f"{init}: no such model to start from")
    teacher = teacher or (init if cfg.distill > 0 else None)
    if teacher is not None and not teacher.is_file():
        raise ModelError(f"{teacher}: no such model to learn from")
    if cfg.photo_subset is not None and photos is None:
        raise FmnistEdgeError("a photo subset needs photos to take it from (--photos)")
    if teacher is not None and cfg.distill == 0:
        raise FmnistEdgeError("a teacher needs a distillation weight above 0")
    params = None if init is not None else param_count(cfg.model)  # an --init model is counted once built
    if params is not None and params >= PARAM_LIMIT:  # before minutes of loading data
        raise FmnistEdgeError(f"stages {format_stages(cfg.model.stages)} make a model of {params} parameters; "
                              f"the limit is {PARAM_LIMIT}")
    started = time.time()
    # The code that runs is the code at start: edits made while the photos load must not be recorded as it.
    commit = git_commit(Path(__file__).resolve().parent)
    data, data_record = load_data(cfg, data_dir, photos, log)  # every input is checked before any training
    record = {
        "config": asdict(cfg),
        "seed": cfg.seed,
        "params": None,  # _fit counts them on the model it builds
        "macs_per_image": None,
        **data_record,
        "init": _file_record(init),
        "teacher": _file_record(teacher),
        "git_commit": commit,
        "versions": versions("tensorflow", "keras", "numpy"),
        "selection": _selection(cfg, data),
        "history": [],
        "best_epoch": None,
        "best_val_accuracy": None,
        "status": "running",
    }
    return _fit(cfg, out_dir, data, record, started, log, start=init, teacher=teacher)


def resume(out_dir: Path, data_dir: Path | None = None, log=print) -> dict:
    """Continue a stopped run in `out_dir` after its last finished epoch, as if it had never stopped.

    A full run outlasts some sessions and machines' uptime. Everything comes from the run's record
    (configuration, photos, teacher) and its last checkpoint (weights and the optimizer's step count and
    momentum); each epoch's shuffle is seeded by (seed, epoch), so the epochs that follow are the ones
    the uninterrupted run would have trained. The inputs must be the same files: hashes are checked.
    """
    record_path = out_dir / RECORD_FILE
    try:
        record = json.loads(record_path.read_text())
        cfg = config_from_record(record["config"])
        done = len(record["history"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FmnistEdgeError(f"{record_path}: no training record to resume from ({exc})") from None
    if record.get("status") == "completed" or done >= cfg.epochs:
        raise FmnistEdgeError(f"{out_dir}: that run completed all {cfg.epochs} epochs; nothing to resume")
    checkpoint = out_dir / (MODEL_FILE if cfg.select == "last" else RESUME_FILE)
    if done == 0 or not checkpoint.is_file():
        raise FmnistEdgeError(f"{out_dir}: no finished epoch to resume from; start the run again")
    photos = _same_file(record.get("photos"), "dir", "labels_sha256", lambda p: p / "labels.csv")
    teacher = _same_file(record.get("teacher"), "file", "sha256")
    started = time.time() - float(record.get("wall_seconds", 0.0))
    commit = git_commit(Path(__file__).resolve().parent)
    data, data_record = load_data(cfg, data_dir, photos, log)
    if data_record["data_sha256"] != record["data_sha256"]:
        raise FmnistEdgeError(f"the Fashion-MNIST files differ from the ones {record_path} was trained on")

    record.setdefault("resumed", []).append({"after_epoch": done, "git_commit": commit,
                                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    record["status"] = "running"
    log(f"resuming {out_dir} after epoch {done} of {cfg.epochs}")
    return _fit(cfg, out_dir, data, record, started, log, start=checkpoint, teacher=teacher, resuming=True)


def _fit(cfg: TrainConfig, out_dir: Path, data: Data, record: dict, started: float, log, start: Path | None,
         teacher: Path | None, resuming: bool = False) -> dict:
    """Train from `start` (None: fresh weights; a model to fine-tune; or with `resuming`, the run's checkpoint)."""
    import keras

    from fmnist_edge.train import loop

    keras.utils.set_random_seed(cfg.seed)
    if resuming:
        model, saved_optimizer = loop.resumed_model(cfg, start)
    else:
        model, saved_optimizer = loop.initial_model(cfg, start), None
        record["params"], record["macs_per_image"] = model.count_params(), count_macs(model)
        if record["params"] >= PARAM_LIMIT:
            raise FmnistEdgeError(f"model has {record['params']} parameters; the limit is {PARAM_LIMIT}")
    taught = None
    if teacher is not None:
        # The teacher's mirror-averaged answers on the un-augmented images, computed once (two inference
        # passes) rather than a teacher pass every step; shifts and erasures leave those answers apt.
        log(f"computing the answers of {teacher} on the {len(data.train_x)} training images ...")
        taught = loop.mirror_probabilities(load_keras_model(teacher), data.train_x)
    first_epoch = len(record["history"])
    batches = loop.Batches(data, cfg, taught, first_epoch=first_epoch)
    schedule, optimizer = loop.make_optimizer(cfg, len(batches))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )
    if saved_optimizer is not None:
        loop.restore_optimizer(optimizer, model, saved_optimizer, start, expected_step=first_epoch * len(batches))
    if resuming and "seed_states" in record:
        loop.restore_seed_states(model, record["seed_states"], start)
    elif resuming:  # a record written before the streams were saved
        log("the record holds no dropout state: the epochs after resuming differ slightly from an uninterrupted run")
    record_path = out_dir / RECORD_FILE
    recorder = loop.Recorder(data, record, out_dir / MODEL_FILE, lambda: _write_record(record, record_path, started),
                             schedule, optimizer, log, keep_last=cfg.select == "last",
                             resume_path=None if cfg.select == "last" else out_dir / RESUME_FILE)
    callbacks = [recorder]
    if sys.stderr.isatty():
        callbacks.append(loop.ProgressBar(cfg.epochs - first_epoch, len(batches)))
    try:
        model.fit(batches, validation_data=(data.val_x[..., None].astype("float32"), loop.one_hot(data.val_y)),
                  epochs=cfg.epochs, initial_epoch=first_epoch, callbacks=callbacks, verbose=0)
        record["status"] = "completed"
        (out_dir / RESUME_FILE).unlink(missing_ok=True)  # a completed run has nothing left to resume
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    finally:
        _write_record(record, record_path, started)
    return record


def config_from_record(saved: dict) -> TrainConfig:
    """The TrainConfig a record was written with (JSON has lists where the config has tuples)."""
    nested = {"model": ModelConfig, "augment": AugmentConfig, "photo_augment": PhotoAugmentConfig}
    return TrainConfig(**{key: nested[key](**value) if key in nested else value for key, value in saved.items()})


def _same_file(entry: dict | None, path_key: str, hash_key: str, hashed=lambda p: p) -> Path | None:
    """A file or folder named in the record, refused unless it still hashes as it did. It is looked
    for as it was given (relative to the folder the run is resumed from), then where it was then."""
    if entry is None:
        return None
    given = Path(entry[path_key])
    present = [p for p in dict.fromkeys((given, Path(entry.get("absolute", given)))) if hashed(p).is_file()]
    if not present:
        where = f" or {entry['absolute']}" if "absolute" in entry else " (resume from the folder the run started in)"
        raise FmnistEdgeError(f"{hashed(given)}: named by the training record but not found{where}")
    for path in present:
        if hashlib.sha256(hashed(path).read_bytes()).hexdigest() == entry[hash_key]:
            return path
    raise FmnistEdgeError(f"{hashed(present[0])}: changed since the run started; resuming would train on other data")


def load_data(cfg: TrainConfig, data_dir: Path | None, photos: Path | None, log) -> tuple[Data, dict]:
    ds = fmnist_data.load(data_dir)
    (train_x, train_y), (val_x, val_y) = split(ds.train_images, ds.train_labels, cfg)
    record: dict = {"train_size": len(train_x), "val_size": len(val_x), "data_source": str(ds.source),
                    "data_sha256": ds.sha256, "photos": None}
    if photos is None:
        return Data(train_x, train_y, val_x, val_y), record
    if not 0.0 < cfg.photo_fraction < 1.0:
        raise FmnistEdgeError(f"photo fraction {cfg.photo_fraction} must be between 0 and 1")
    log(f"preprocessing the photos in {photos} ...")
    photo_train = load_split(photos, TRAIN_SPLIT, log)
    photo_val = load_split(photos, VAL_SPLIT, log)
    readable = len(photo_train.files)
    if cfg.photo_subset is not None:
        photo_train = subset_of(photo_train, cfg.photo_subset, cfg.seed)
    if cfg.photo_variants:
        log(f"making {cfg.photo_variants} jittered variants of each training photo ...")
        photo_train = with_variants(photos, photo_train, cfg.photo_variants, cfg.seed, workers=cores())
    labels_file = photos / "labels.csv"
    record["photos"] = {
        "dir": str(photos),
        "absolute": str(photos.resolve()),
        "labels_sha256": hashlib.sha256(labels_file.read_bytes()).hexdigest(),
        "train": len(photo_train.files),
        "val": len(photo_val.files),
        "unreadable": [*photo_train.unreadable, *photo_val.unreadable],
    }
    of = f" (of {readable})" if len(photo_train.files) < readable else ""
    log(f"photos: {len(photo_train.files)} train{of}, {len(photo_val.files)} val, "
        f"{len(record['photos']['unreadable'])} unreadable")
    return Data(train_x, train_y, val_x, val_y, photo_train, photo_val), record


def _file_record(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {"file": str(path), "absolute": str(path.resolve()),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _write_record(record: dict, path: Path, started: float) -> None:
    record["wall_seconds"] = round(time.time() - started, 1)
    record["peak_rss_mb"] = round(max(peak_rss_mb(), record.get("peak_rss_mb") or 0.0), 1)
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")


def _selection(cfg: TrainConfig, data: Data) -> str:
    """What picks the checkpoint, in words, for the record."""
    if cfg.select == "last":
        return "the last epoch"
    return "val_accuracy" if data.photos is None else "mean of val_accuracy and photo_val_accuracy"
