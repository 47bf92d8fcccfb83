"""`fmnist-edge train`: fit the compact CNN on a held-out split of the 60k training images.

The test set is never touched here: model selection (the best epoch) uses the validation split
only. The best checkpoint is written atomically whenever validation accuracy improves, so Ctrl-C
or a crash leaves the last good model in place.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.common.atomic import atomic_path, write_text_atomic
from fmnist_edge.common.keras_model import TRAINING_RECORD
from fmnist_edge.runtime.errors import FmnistEdgeError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.machine import peak_rss_mb
from fmnist_edge.runtime.spec import NUM_CLASSES
from fmnist_edge.train import data as fmnist_data
from fmnist_edge.train.augment import AugmentConfig, augment_batch
from fmnist_edge.train.model import PARAM_LIMIT, ModelConfig, build_model, count_macs
from fmnist_edge.train.provenance import git_commit, versions

MODEL_FILE = by_name("keras").filename
RECORD_FILE = TRAINING_RECORD


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
    jit_compile: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def split(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig):
    """Fixed-seed split of the training set into (train, validation)."""
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.subset is not None:
        train_idx = train_idx[: cfg.subset]
        val_idx = val_idx[: max(1, min(cfg.val_size, cfg.subset // 5))]
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def _batches(images, labels, cfg: TrainConfig):
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """One reshuffle per epoch from a generator seeded by (seed, epoch): reproducible."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self._shuffle()

        def _shuffle(self) -> None:
            self.rng = np.random.default_rng([cfg.seed, self.epoch])
            self.order = self.rng.permutation(len(images))

        def __len__(self) -> int:
            return math.ceil(len(images) / cfg.batch_size)

        def __getitem__(self, i: int):
            idx = self.order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = augment_batch(images[idx], self.rng, cfg.augment)
            return x[..., None].astype("float32"), _one_hot(labels[idx])

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._shuffle()

    return AugmentedBatches()


def train(cfg: TrainConfig, out_dir: Path, data_dir: Path | None = None, force: bool = False) -> dict:
    """Train and write `fmnist_cnn.keras` (best by validation accuracy) and its JSON record."""
    model_path, record_path = out_dir / MODEL_FILE, out_dir / RECORD_FILE
    if model_path.exists() and not force:
        raise FmnistEdgeError(f"{model_path} exists; pass --force to replace it or choose another --out")

    import keras

    started = time.time()
    ds = fmnist_data.load(data_dir)
    keras.utils.set_random_seed(cfg.seed)
    (x_train, y_train), (x_val, y_val) = split(ds.train_images, ds.train_labels, cfg)

    model = build_model(cfg.model)
    params, macs = model.count_params(), count_macs(model)
    if params >= PARAM_LIMIT:
        raise FmnistEdgeError(f"model has {params} parameters; the limit is {PARAM_LIMIT}")

    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = cfg.epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.peak_lr / 100, decay_steps=max(1, total - warmup), alpha=0.0,
        warmup_target=cfg.peak_lr, warmup_steps=warmup,
    )
    optimizer = keras.optimizers.SGD(schedule, momentum=cfg.momentum, nesterov=True,
                                     weight_decay=cfg.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bn", "bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )
    train_data = _batches(x_train, y_train, cfg)
    val_x, val_y = x_val[..., None].astype("float32"), _one_hot(y_val)

    record: dict = {
        "config": asdict(cfg),
        "seed": cfg.seed,
        "params": params,
        "macs_per_image": macs,
        "train_size": len(x_train),
        "val_size": len(x_val),
        "data_source": str(ds.source),
        "data_sha256": ds.sha256,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "versions": versions("tensorflow", "keras", "numpy"),
        "history": [],
        "best_epoch": None,
        "best_val_accuracy": None,
        "status": "running",
    }

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = -1.0
            self.epoch_started = time.time()

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch_started = time.time()

        def on_epoch_end(self, epoch, logs=None) -> None:
            logs = logs or {}
            row = {k: round(float(v), 5) for k, v in logs.items()}
            row.update(epoch=epoch + 1, seconds=round(time.time() - self.epoch_started, 1),
                       lr=float(schedule(optimizer.iterations)))
            record["history"].append(row)
            if row["val_accuracy"] > self.best:
                self.best = row["val_accuracy"]
                record["best_epoch"], record["best_val_accuracy"] = epoch + 1, self.best
                with atomic_path(model_path) as tmp:
                    self.model.save(tmp)
            _write_record(record, record_path, started)

    try:
        model.fit(train_data, validation_data=(val_x, val_y), epochs=cfg.epochs,
                  callbacks=[Recorder()], verbose=2)
        record["status"] = "completed"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    finally:
        _write_record(record, record_path, started)
    return record


def _one_hot(labels: np.ndarray) -> np.ndarray:
    # One-hot targets so the loss can apply label smoothing.
    return np.eye(NUM_CLASSES, dtype="float32")[labels]


def _write_record(record: dict, path: Path, started: float) -> None:
    record["wall_seconds"] = round(time.time() - started, 1)
    record["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
