"""Training: the shipped model's size, a smoke run end to end, and the guarantees around files."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import typer
from helpers import BFLOAT16_RUNS
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.train.augment import AugmentConfig, augment_batch
from fmnist_edge.train.model import PARAM_LIMIT

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # the Keras model is not in the wheel
# Only the tests that load or train a Keras model need TensorFlow; the numpy ones (augmentation,
# atomic writes, the normalization constants) run in a base install too.
needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra"
)


@needs_tensorflow
def test_shipped_model_is_under_the_parameter_limit() -> None:
    import keras

    model = keras.models.load_model(ARTIFACTS / by_name("keras").filename, compile=False)
    assert model.count_params() < PARAM_LIMIT
    record = json.loads((ARTIFACTS / "fmnist_cnn.training.json").read_text())
    assert record["params"] == model.count_params()


@needs_tensorflow
def test_shipped_model_takes_raw_pixels_and_normalizes_inside() -> None:
    """Every format shares one input contract: NHWC raw 0..255 pixels, normalization in the graph."""
    import keras

    from fmnist_edge.runtime.spec import PIXEL_MEAN, PIXEL_STD

    model = keras.models.load_model(ARTIFACTS / by_name("keras").filename, compile=False)
    assert tuple(model.input.shape) == (None, 28, 28, 1)
    norm = model.get_layer("normalize")
    assert norm.scale == pytest.approx(1 / (255 * PIXEL_STD))
    assert norm.offset == pytest.approx(-PIXEL_MEAN / PIXEL_STD)


def test_normalization_constants_match_the_training_data() -> None:
    """The constants in spec.py are the 60k training images' mean and std, so they cannot drift."""
    from fmnist_edge.runtime.spec import PIXEL_MEAN, PIXEL_STD
    from fmnist_edge.train import data

    images = data.load().train_images.astype(np.float64) / 255.0
    assert images.mean() == pytest.approx(PIXEL_MEAN, abs=5e-4)
    assert images.std() == pytest.approx(PIXEL_STD, abs=5e-4)


def test_augmentation_keeps_shape_dtype_and_is_seeded() -> None:
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    a = augment_batch(images, np.random.default_rng(1), AugmentConfig())
    b = augment_batch(images, np.random.default_rng(1), AugmentConfig())
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images)


def test_smoke_training_writes_model_and_record(smoke_run: Path) -> None:
    record = json.loads((smoke_run / "fmnist_cnn.training.json").read_text())
    assert (smoke_run / "fmnist_cnn.keras").is_file()
    assert record["status"] == "completed"
    assert record["record_version"] == 2 and record["config"]["seed"] == 0
    for key in ("config", "history", "wall_seconds", "peak_rss_mb", "data_sha256", "git_commit",
                "versions", "params", "macs_per_image", "best_epoch", "best_val_accuracy"):
        assert key in record, key
    assert len(record["history"]) == 1
    assert record["train_size"] == 512


@pytest.mark.slow
@needs_tensorflow
def test_select_last_keeps_the_final_epoch_whatever_validation_says(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "2", "--select", "last",
                                      "--no-photos", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "last epoch 2: val accuracy" in result.output
    record = json.loads((tmp_path / "fmnist_cnn.training.json").read_text())
    assert record["selection"] == "the last epoch" and record["config"]["select"] == "last"
    assert record["best_epoch"] == 2 and record["best_val_accuracy"] == record["history"][-1]["val_accuracy"]


@pytest.mark.slow
@needs_tensorflow
@pytest.mark.parametrize("text", ["32/64,64/128,128,128", "32/80,80/128,128,128", "8/16,16", "4"])
def test_the_parameter_count_checked_before_training_is_keras_s(text: str) -> None:
    from fmnist_edge.train.model import ModelConfig, build_model, param_count, parse_stages

    for residual in (False, True):  # the shortcuts add no weights
        config = ModelConfig(stages=parse_stages(text), residual=residual)
        assert param_count(config) == build_model(config).count_params()


@pytest.mark.slow
@needs_tensorflow
def test_a_network_shape_and_flips_from_the_command_line_are_trained_and_recorded(tmp_path: Path) -> None:
    from fmnist_edge.train.model import ModelConfig, param_count

    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--stages", "8/16,16",
                                      "--residual", "--alternate-flip", "--no-photos", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "fmnist_cnn.training.json").read_text())
    assert record["config"]["model"]["stages"] == [[8], [16, 16]] and record["config"]["model"]["residual"] is True
    assert record["config"]["augment"]["alternate_flip"] is True
    saved = json.loads(zipfile.ZipFile(tmp_path / "fmnist_cnn.keras").read("config.json"))
    assert [layer["class_name"] for layer in saved["config"]["layers"]].count("Add") == 1  # 16 -> 16 only
    assert record["params"] == param_count(ModelConfig(stages=((8,), (16, 16))))


@needs_tensorflow
@pytest.mark.parametrize(("extra", "says"), [
    (["--stages", "32/sixty"], "want channels per conv"),
    (["--stages", "32/0"], "at least one channel"),
    (["--stages", "256,256/256,256"], "the limit is 500000"),
    (["--stages", "8", "--init", "artifacts/fmnist_cnn.keras"], "--init continues a trained one"),
    (["--stages", "8/8/8/8/8/8"], "pool the 28x28 input below one pixel"),
])
def test_a_bad_network_shape_is_one_line_before_any_data_is_read(tmp_path: Path, extra: list[str], says: str) -> None:
    no_data = tmp_path / "no-data"  # were the data read first, the error would be about this folder
    result = CliRunner().invoke(app, ["train", *extra, "--data-dir", str(no_data), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_train_with_no_options_is_the_recipe_the_shipped_model_was_trained_with() -> None:
    """The README's `fmnist-edge train` reproduces the shipped model: its record's configuration is
    the defaults, and the CLI's defaults are read from the same dataclass."""
    from fmnist_edge.train.config import TrainConfig
    from fmnist_edge.train.record import read_record

    shipped = read_record(ARTIFACTS / "fmnist_cnn.training.json")
    assert replace(shipped.config, precision="auto") == TrainConfig() and shipped.photos is not None
    assert shipped.photos.train == 549 and shipped.photos.val == 151  # all of fetch-photos' folder
    params = {p.name: p.default for p in typer.main.get_command(app).commands["train"].params}
    c = shipped.config
    assert (params["epochs"], params["seed"], params["lr"], params["weight_decay"], params["photo_fraction"],
            params["batch_size"], params["select"], params["residual"], params["precision"]) == (
        c.epochs, c.seed, c.peak_lr, c.weight_decay, c.photo_fraction, c.batch_size, c.select, c.model.residual,
        "auto")


@pytest.mark.slow
@needs_tensorflow
def test_without_photos_train_says_in_one_line_that_it_trains_on_the_dataset_alone(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no data/photos-train here
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--out", "run"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "data/photos-train" in line]
    assert len(said) == 1 and "Fashion-MNIST alone" in said[0] and "fetch-photos" in said[0]
    assert json.loads((tmp_path / "run" / "fmnist_cnn.training.json").read_text())["photos"] is None


@pytest.mark.slow
@needs_tensorflow
def test_a_second_run_into_a_locked_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    from fmnist_edge.common.lock import FolderLock

    with FolderLock(tmp_path, "training run"):  # as a run in progress holds it
        result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--no-photos",
                                          "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is writing there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "fmnist_cnn.keras").exists()


@needs_tensorflow
def test_an_out_that_is_a_file_is_refused_before_any_data_is_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    result = CliRunner().invoke(app, ["train", "--no-photos", "--data-dir", str(tmp_path / "no-data"),
                                      "--out", str(out)])
    assert result.exit_code == 2 and "--out" in result.stderr and "is a file" in result.stderr
    assert out.read_text() == "not a folder"


@pytest.mark.slow
@needs_tensorflow
def test_a_model_of_another_contract_is_refused_as_a_starting_point(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    other = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs)))
    other.save(tmp_path / "other.keras")
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--no-photos",
                                      "--init", str(tmp_path / "other.keras"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "must take [28, 28, 1] pixels and give 10 scores" in result.stderr and "Traceback" not in result.output


def test_a_run_never_starts_from_the_model_it_would_overwrite(smoke_run: Path) -> None:
    model = smoke_run / "fmnist_cnn.keras"
    before = model.read_bytes()
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--no-photos", "--force",
                                      "--init", str(model), "--out", str(smoke_run)])
    assert result.exit_code == 2 and "overwrite its own starting point" in result.stderr
    assert model.read_bytes() == before


@pytest.mark.slow
@needs_tensorflow
# bfloat16 where TensorFlow can run it (tests/test_precision.py checks the refusal elsewhere)
# and a run that ships its weights' moving average, whose checkpoints hold the average in the model
@pytest.mark.parametrize(("precision", "extra"), [("float32", []), ("float32", ["--ema", "0.9"]),
                                                  *([("bfloat16", [])] if BFLOAT16_RUNS else [])])
def test_a_stopped_run_resumes_where_it_stopped_and_a_finished_one_does_not(tmp_path: Path, monkeypatch,
                                                                          precision: str, extra: list[str]) -> None:
    import keras

    from fmnist_edge.train import loop

    finish_epoch = loop.Recorder.on_epoch_end

    def stop_after_the_first_epoch(self, epoch, logs=None):
        finish_epoch(self, epoch, logs)
        raise KeyboardInterrupt  # as Ctrl-C, or the machine going away, right after a checkpoint

    monkeypatch.setattr(loop.Recorder, "on_epoch_end", stop_after_the_first_epoch)
    args = ["train", "--subset", "256", "--epochs", "3", "--no-photos", "--precision", precision, *extra,
            "--out", str(tmp_path)]
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 130 and "train --resume --out" in stopped.stderr
    monkeypatch.setattr(loop.Recorder, "on_epoch_end", finish_epoch)

    refused = CliRunner().invoke(app, ["train", "--resume", "--epochs", "5", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "drop --epochs" in refused.stderr

    resumed = CliRunner().invoke(app, ["train", "--resume", "--out", str(tmp_path)])
    assert resumed.exit_code == 0, resumed.output
    record = json.loads((tmp_path / "fmnist_cnn.training.json").read_text())
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3] and record["status"] == "completed"
    # the schedule went on from the step it stopped at: warm-up to 0.1 in epoch 1, then cosine to zero
    assert [row["lr"] for row in record["history"]] == pytest.approx([0.1, 0.05, 0.0], abs=1e-6)
    assert [entry["after_epoch"] for entry in record["resumed"]] == [1]
    assert not (tmp_path / "fmnist_cnn.last.keras").exists()  # a completed run keeps no resume state

    # ... and it is the run that never stopped: the same epochs, the same weights to the bit.
    whole = tmp_path / "whole"
    assert CliRunner().invoke(app, [*args[:-1], str(whole)]).exit_code == 0
    uninterrupted = json.loads((whole / "fmnist_cnn.training.json").read_text())
    drop = ("seconds",)
    assert [{k: v for k, v in row.items() if k not in drop} for row in record["history"]] == \
        [{k: v for k, v in row.items() if k not in drop} for row in uninterrupted["history"]]
    for a, b in zip(keras.saving.load_model(tmp_path / "fmnist_cnn.keras").get_weights(),
                    keras.saving.load_model(whole / "fmnist_cnn.keras").get_weights(), strict=True):
        assert np.array_equal(a, b)

    again = CliRunner().invoke(app, ["train", "--resume", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "nothing to resume" in again.stderr


def test_train_refuses_to_overwrite_without_force(smoke_run: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--subset", "512", "--epochs", "1", "--no-photos",
                                      "--out", str(smoke_run)])
    assert result.exit_code == 2
    assert "--force" in result.output


def test_interrupted_write_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_bytes(b"last good checkpoint")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a check")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"last good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_atomic_writes_are_readable_by_others_like_a_plain_write(tmp_path: Path) -> None:
    # mkstemp's 0600 would make a shipped model unreadable to other users of a system-wide install.
    plain, atomic = tmp_path / "plain.bin", tmp_path / "atomic.bin"
    plain.write_bytes(b"x")
    with atomic_path(atomic) as tmp:
        tmp.write_bytes(b"x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.slow
@needs_tensorflow
def test_sigterm_stops_a_run_within_seconds_and_the_record_says_so(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    exe = Path(sys.executable).parent / "fmnist-edge"
    run = subprocess.Popen([str(exe), "train", "--subset", "2048", "--epochs", "20", "--no-photos",
                            "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "fmnist_cnn.training.json"
    deadline = time.monotonic() + 300
    while not record.is_file() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)  # the first epoch is done: a checkpoint exists to resume from
    assert record.is_file(), run.communicate()[1][-2000:]
    run.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr[-2000:]
    assert time.monotonic() - stopped < 10  # a batch, not an epoch (generous: CI machines are shared)
    assert "train --resume --out" in stderr and "Traceback" not in stderr
    assert json.loads(record.read_text())["status"] == "interrupted"


@pytest.mark.slow
@needs_tensorflow
def test_a_batch_holds_the_same_images_whichever_thread_makes_it_and_when() -> None:
    """Batches are made by threads while the model trains: each must depend on (seed, epoch, index)
    alone, or a run would differ with the threads' timing, and a resumed run from the uninterrupted one."""
    from fmnist_edge.train.config import TrainConfig
    from fmnist_edge.train.loop import Batches
    from fmnist_edge.train.photos import PhotoSplit
    from fmnist_edge.train.train import Data

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 1000)
    photos = PhotoSplit(images=images[:20], labels=labels[:20], files=tuple(f"p{i}.jpg" for i in range(20)))
    data = Data(images, labels, images[:10], labels[:10], photos=photos)
    cfg = TrainConfig(batch_size=64)
    first = Batches(data, cfg, threads=1)
    in_order = [first[i] for i in range(len(first))]
    later = Batches(data, cfg, threads=2)
    for i in reversed(range(len(later))):  # another order, another object
        x, y = later[i]
        assert np.array_equal(x, in_order[i][0]) and np.array_equal(y, in_order[i][1])
    first.on_epoch_end()
    assert not np.array_equal(first[0][0], in_order[0][0])  # the next epoch is another draw
    assert np.array_equal(Batches(data, cfg, first_epoch=1)[0][0], first[0][0])  # as a resumed run draws it


def test_alternating_flips_show_each_image_both_ways_in_every_two_epochs() -> None:
    """`--alternate-flip`: an image mirrored in one epoch is not in the next, and the other way round;
    which way each starts is drawn from the seed, so a resumed run flips as the uninterrupted one."""
    from fmnist_edge.train.config import AugmentConfig, TrainConfig
    from fmnist_edge.train.loop import Batches
    from fmnist_edge.train.train import Data

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), rng.integers(0, 10, 300)
    data = Data(images, labels, images[:10], labels[:10], photos=None)
    cfg = TrainConfig(batch_size=64, augment=AugmentConfig(alternate_flip=True, max_shift=0, erase_prob=0.0))

    def mirrored(batches: Batches) -> np.ndarray:
        """Which training images this epoch of `batches` shows mirrored, by image index."""
        seen = np.concatenate([batches[i][0][..., 0] for i in range(len(batches))]).astype(np.uint8)
        shown = seen[np.argsort(batches.order)]
        assert all(np.array_equal(s, im) or np.array_equal(s, im[:, ::-1]) for s, im in zip(shown, images, strict=True))
        return np.array([not np.array_equal(s, im) for s, im in zip(shown, images, strict=True)])

    batches = Batches(data, cfg, threads=1)
    flips = []
    for _ in range(3):
        flips.append(mirrored(batches))
        batches.on_epoch_end()
    assert 0.3 < flips[0].mean() < 0.7  # the first epoch's at random
    assert np.array_equal(flips[1], ~flips[0]) and np.array_equal(flips[2], flips[0])
    assert np.array_equal(mirrored(Batches(data, cfg, first_epoch=1, threads=1)), flips[1])
    coin = Batches(data, replace(cfg, augment=replace(cfg.augment, alternate_flip=False)), threads=1)
    first = mirrored(coin)
    coin.on_epoch_end()
    assert (mirrored(coin) == first).any()  # coin flips: some images show the same way twice running


@pytest.mark.slow
@needs_tensorflow
def test_an_averaging_run_ships_the_average_its_record_scores_and_trains_as_without(tmp_path: Path) -> None:
    """`--ema`: the model written is the weights' moving average, not the last weights; the record's
    validation figures are that model's; and averaging leaves the training path itself alone."""
    import keras

    from fmnist_edge.train import data
    from fmnist_edge.train.record import read_record
    from fmnist_edge.train.split import split

    runs = {}
    for name, extra in (("plain", []), ("averaged", ["--ema", "0.9"])):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "2", "--no-photos",
                                          "--precision", "float32", *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs[name] = (read_record(out / "fmnist_cnn.training.json"), keras.saving.load_model(out / "fmnist_cnn.keras"))
    (plain, plain_model), (averaged, averaged_model) = runs["plain"], runs["averaged"]
    assert averaged.config.ema == 0.9 and plain.config.ema is None
    # the weights trained the same way (the loss is the training weights'), epoch 2 included: the
    # average was taken out of the model after epoch 1's checkpoint
    assert [row["loss"] for row in averaged.history] == [row["loss"] for row in plain.history]
    assert not all(np.array_equal(a, b) for a, b in zip(averaged_model.get_weights(), plain_model.get_weights(),
                                                        strict=True))
    ds = data.load()
    _, (val_x, val_y) = split(ds.train_images, ds.train_labels, averaged.config)
    for record, model in runs.values():
        accuracy = (model.predict(val_x[..., None].astype("float32"), verbose=0).argmax(1) == val_y).mean()
        assert accuracy == pytest.approx(record.history[-1]["val_accuracy"], abs=1e-5)
