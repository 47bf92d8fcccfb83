"""The Keras side of training: model, optimizer, batches and the per-epoch recorder.

This module imports Keras at the top; train.py imports it only inside `train()`, so the
configuration, the data split and the photo loading stay usable (and testable) without TensorFlow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.common.keras_model import in_precision, load_keras_model
from fmnist_edge.runtime.classifier import mirror_averaged
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.spec import INPUT_SHAPE, NUM_CLASSES
from fmnist_edge.train.augment import augment_batch
from fmnist_edge.train.model import build_model
from fmnist_edge.train.photo_augment import augment_photos
from fmnist_edge.train.photos import class_balanced_weights
from fmnist_edge.train.record import TrainingRecord, validation_score


def initial_model(cfg, init: Path | None) -> keras.Model:
    """A fresh model from cfg.model, or the trained model to fine-tune (its own shape wins), computing
    in cfg.precision."""
    if init is None:
        return in_precision(build_model(cfg.model), cfg.precision)
    model = in_precision(_of_our_contract(load_keras_model(init), init), cfg.precision)
    return _frozen_as_configured(model, cfg)


def _of_our_contract(model: keras.Model, path: Path) -> keras.Model:
    """A model to fine-tune must take 28x28x1 pixels and give 10 scores, like the ones we ship:
    anything else would fail deep inside Keras, or worse, train."""
    inputs, outputs = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    if inputs != tuple(INPUT_SHAPE) or outputs != (NUM_CLASSES,):
        raise ModelError(f"{path}: takes {list(inputs)} and gives {list(outputs)}; a model to start from must "
                         f"take {list(INPUT_SHAPE)} pixels and give {NUM_CLASSES} scores")
    return model


def resumed_model(cfg, checkpoint: Path) -> tuple[keras.Model, list[np.ndarray]]:
    """A stopped run's model and its optimizer's saved state (schedule step, momentum), from one load."""
    model = _frozen_as_configured(load_keras_model(checkpoint, with_optimizer=True), cfg)
    state = [v.numpy() for v in model.optimizer.variables] if model.optimizer is not None else []
    return model, state


def seed_states(model: keras.Model) -> list[list[int]]:
    """The state of each random stream inside the model (Dropout's). A .keras file does not keep it,
    so each epoch's record does: a resumed run then draws the dropout masks the uninterrupted run
    would have drawn, and ends with the same weights."""
    return [v.numpy().tolist() for v in _seed_variables(model)]


def restore_seed_states(model: keras.Model, states: list[list[int]], checkpoint: Path) -> None:
    variables = _seed_variables(model)
    if len(variables) != len(states):
        raise ModelError(f"{checkpoint}: the record holds {len(states)} random streams, the model "
                         f"{len(variables)}; cannot resume")
    for variable, state in zip(variables, states, strict=True):
        variable.assign(np.asarray(state, dtype=variable.dtype))


def _seed_variables(model: keras.Model) -> list:
    return [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]


def _frozen_as_configured(model: keras.Model, cfg) -> keras.Model:
    if cfg.freeze_batchnorm:
        # A frozen BatchNormalization layer runs in inference mode: it keeps the dataset's statistics
        # instead of drifting towards mixed photo batches, which costs dataset accuracy.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def make_optimizer(cfg, steps_per_epoch: int):
    """SGD with Nesterov momentum, a linear warm-up to peak_lr, then cosine to zero; with cfg.ema, keeping
    a moving average of the weights in its own slots."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = cfg.epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.peak_lr / 100, decay_steps=max(1, total - warmup), alpha=0.0,
        warmup_target=cfg.peak_lr, warmup_steps=warmup,
    )
    averaging = {} if cfg.ema is None else {"use_ema": True, "ema_momentum": cfg.ema}
    optimizer = keras.optimizers.SGD(schedule, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay,
                                     **averaging)
    optimizer.exclude_from_weight_decay(var_names=["bn", "bias"])
    return schedule, optimizer


def restore_optimizer(optimizer, model: keras.Model, state: list[np.ndarray], checkpoint: Path,
                      expected_step: int) -> None:
    """Give `optimizer` the state saved in `checkpoint` (see resumed_model): its step count and momentum.

    The optimizer itself is built afresh from the config, as for a new run: a saved optimizer does not
    bring back everything (the names excluded from weight decay, for one), but its variables do.
    """
    optimizer.build(model.trainable_variables)
    if [v.shape for v in state] != [tuple(v.shape) for v in optimizer.variables]:
        raise ModelError(f"{checkpoint}: its optimizer state does not fit this run's model; cannot resume")
    for target, value in zip(optimizer.variables, state, strict=True):
        target.assign(value)
    if int(optimizer.iterations) != expected_step:
        raise ModelError(f"{checkpoint}: saved at step {int(optimizer.iterations)}, but the record's epochs "
                         f"end at step {expected_step}; cannot resume")


class WeightAverage(keras.callbacks.Callback):
    """With cfg.ema: the weights' moving average is in the model for validation and for each epoch's
    end, so the epoch's figures and checkpoint are the average's; the training weights wait in the
    optimizer's average slots meanwhile and come back when the next epoch starts (or a resumed run
    starts: `trade_in_training_weights`). Must come before the Recorder.

    Keras' own SwapEMAWeights swaps by adding and subtracting, which is not exact in floating point:
    the training weights would come back changed, and a resumed run would not be the run that never
    stopped. This one trades values.
    """

    def __init__(self) -> None:
        super().__init__()
        self.average_in_model = False

    def _put_average_in_model(self, wanted: bool) -> None:
        if self.average_in_model != wanted:
            trade_in_training_weights(self.model.optimizer)
            self.average_in_model = wanted

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._put_average_in_model(False)

    def on_test_begin(self, logs=None) -> None:
        self._put_average_in_model(True)

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._put_average_in_model(True)
        if epoch == self.params["epochs"] - 1:  # fit() ends by writing the slots into the model: make them the average
            for weight, slot in _averaged(self.model.optimizer):
                slot.assign(weight)


def trade_in_training_weights(optimizer) -> None:
    """Swap the model's weights with the optimizer's average slots: a checkpoint of an averaging run
    holds the average in the model and the training weights in the slots (see WeightAverage)."""
    for weight, slot in _averaged(optimizer):
        held = keras.ops.convert_to_numpy(slot)
        slot.assign(weight)
        weight.assign(held)


def _averaged(optimizer) -> list[tuple]:
    # Keras keeps the average slots in this attribute (its SwapEMAWeights reads it too); tests pin it.
    return list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True))


def one_hot(labels: np.ndarray) -> np.ndarray:
    # One-hot targets so the loss can apply label smoothing.
    return np.eye(NUM_CLASSES, dtype="float32")[labels]


LOADER_THREADS = 2  # threads preparing batches while the model trains on the one before
FLIP_STREAM = 0x466C6970  # "Flip": seeds the alternating flips apart from the shuffles and batches


class Batches(keras.utils.PyDataset):
    """Augmented Fashion-MNIST batches, and with photos given, `photo_fraction` of every batch real
    photos (drawn class-balanced, photo-augmented). An epoch is one pass over Fashion-MNIST.

    Batches are made by LOADER_THREADS threads while TensorFlow runs the step before (numpy, Pillow
    and TensorFlow release the GIL), so augmentation no longer idles a core. Each batch draws from
    its own generator, seeded by (seed, epoch, batch): what a batch holds does not depend on which
    thread made it or when, so a run, and a resumed run, is the same for any number of threads.
    The epoch's order is one permutation seeded by (seed, epoch); fit() must not reshuffle it.
    """

    def __init__(self, data, cfg, first_epoch: int = 0, threads: int | None = None) -> None:
        threads = LOADER_THREADS if threads is None else threads
        super().__init__(workers=threads, use_multiprocessing=False, max_queue_size=4 * threads)
        self.data, self.cfg = data, cfg
        self.photos_per_batch = 0
        if data.photos is not None:
            self.photos_per_batch = max(1, round(cfg.batch_size * cfg.photo_fraction))
            self.photo_weights = class_balanced_weights(data.photos.labels)
        self.per_batch = cfg.batch_size - self.photos_per_batch
        self.epoch = first_epoch  # a resumed run draws the epochs the uninterrupted one would have
        self.first_flips = None  # with alternating flips: which images epoch 0 mirrors (a function of the seed)
        if cfg.augment.flip and cfg.augment.alternate_flip:
            self.first_flips = np.random.default_rng([cfg.seed, FLIP_STREAM]).random(len(data.train_x)) < 0.5
        self._shuffle()

    def _shuffle(self) -> None:
        self.order = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(len(self.data.train_x))

    def __len__(self) -> int:
        return math.ceil(len(self.data.train_x) / self.per_batch)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        idx = self.order[i * self.per_batch : (i + 1) * self.per_batch]
        flips = None if self.first_flips is None else self.first_flips[idx] ^ bool(self.epoch % 2)
        x = augment_batch(self.data.train_x[idx], rng, self.cfg.augment, flips)[..., None].astype("float32")
        y = one_hot(self.data.train_y[idx])
        if self.photos_per_batch:
            photos = self.data.photos
            pick = rng.choice(len(photos.labels), self.photos_per_batch, p=self.photo_weights)
            chosen = photos.images[pick]
            if photos.variants is not None:  # the original or one of its jittered re-preprocessings
                chosen = photos.variants[pick, rng.integers(0, photos.variants.shape[1], len(pick))]
            px = augment_photos(chosen, rng, self.cfg.photo_augment)[..., None].astype("float32")
            x, y = np.concatenate([x, px]), np.concatenate([y, one_hot(photos.labels[pick])])
        return x, y.astype("float32")

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def mirror_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 as classify answers: by the runtime's own mirror averaging (uint8 [N, 28, 28] images)."""
    def run(pixels: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(model(pixels.astype("float32"), training=False))

    return float((mirror_averaged(run, images[..., None], 250).argmax(1) == labels).mean())


class ProgressBar(keras.callbacks.Callback):
    """A bar over every training step with an ETA, for a person at a terminal. When stderr is a pipe
    or a file (CI, a log), the per-epoch lines alone are written: a bar there is only noise."""

    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = epochs * steps_per_epoch
        self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps, ETA"),
                            TimeRemainingColumn(), transient=True, console=Console(stderr=True))
        self.task = None

    def on_train_begin(self, logs=None) -> None:
        self.bar.start()
        self.task = self.bar.add_task("train", total=self.total)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.bar.advance(self.task)

    def on_train_end(self, logs=None) -> None:
        self.bar.stop()


class Recorder(keras.callbacks.Callback):
    """After each epoch: a history row, a line of progress, and the checkpoint when it is the best.

    "Best" is train/record.py's `validation_score`. With `keep_last` every epoch replaces the
    checkpoint, so the run ends with the end of its schedule. `on_epoch(epoch, score)`, when given, is
    told each epoch's validation score once its checkpoint and record are written (`tune` prunes by it).
    """

    def __init__(self, data, record: TrainingRecord, model_path: Path, save_record: Callable[[], None],
                 schedule, optimizer, log: Callable[[str], None], keep_last: bool = False,
                 resume_path: Path | None = None, on_epoch: Callable[[int, float], None] | None = None) -> None:
        super().__init__()
        self.data, self.record, self.model_path, self.save_record = data, record, model_path, save_record
        self.keep_last, self.resume_path, self.on_epoch = keep_last, resume_path, on_epoch
        self.schedule, self.optimizer, self.log = schedule, optimizer, log
        self.best = max((self._score(row) for row in record.history), default=-1.0)  # a resumed run's so far
        self.first_epoch = len(record.history)
        self.started = self.epoch_started = time.time()

    def _score(self, row: dict) -> float:
        if self.keep_last:
            return float(row["epoch"])  # every epoch replaces the checkpoint: the run ends with its final weights
        return validation_score(row)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None) -> None:
        row = {k: round(float(v), 5) for k, v in (logs or {}).items()}
        row.update(epoch=epoch + 1, seconds=round(time.time() - self.epoch_started, 1),
                   lr=float(self.schedule(self.optimizer.iterations)))
        if self.data.photos_val is not None:
            row["photo_val_accuracy"] = round(
                mirror_accuracy(self.model, self.data.photos_val.images, self.data.photos_val.labels), 5)
        self.record.history.append(row)
        self.record.seed_states = seed_states(self.model)
        score = self._score(row)
        improved = score > self.best
        if improved:
            self.best = score
            self.record.best_epoch, self.record.best_val_accuracy = epoch + 1, row["val_accuracy"]
            self.record.best_photo_val_accuracy = row.get("photo_val_accuracy")
            with atomic_path(self.model_path) as tmp:
                self.model.save(tmp)
        if self.resume_path is not None:  # the state to resume from is the last epoch's, not the best one's
            with atomic_path(self.resume_path) as tmp:
                self.model.save(tmp)
        self.save_record()
        self.log(self._progress(row, improved))
        if self.on_epoch is not None:  # last: what it raises finds the epoch's checkpoint and record written
            self.on_epoch(epoch + 1, validation_score(row))

    def _progress(self, row: dict, improved: bool) -> str:
        done, total = len(self.record.history), self.record.config.epochs
        eta = (time.time() - self.started) / (done - self.first_epoch) * (total - done)
        photos = f"  photo val {row['photo_val_accuracy']:.4f}" if "photo_val_accuracy" in row else ""
        saved = "" if not improved else "  (saved)" if self.keep_last else "  (best so far, saved)"
        return (f"epoch {row['epoch']}/{total}: loss {row['loss']:.4f}  val {row['val_accuracy']:.4f}{photos}  "
                f"{row['seconds']:.0f}s, about {eta / 60:.0f} min left{saved}")
