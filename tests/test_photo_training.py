"""Photo-domain training: a bad photo folder stops before training; photos reach the batches as the
device would see them; photo augmentation keeps the input contract."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.common.lock import LOCK_FILE
from fmnist_edge.runtime.errors import FmnistEdgeError
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.train.photo_augment import PhotoAugmentConfig, augment_photos
from fmnist_edge.train.photos import PhotoSplit, class_balanced_weights, load_split, subset_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOOD = "file,label,split\nphoto_tshirt.jpg,0,train\nphoto_ankle_boot.jpg,9,val\n"


def photo_folder(root: Path, labels_csv: str | None = GOOD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("photo_tshirt.jpg", "photo_ankle_boot.jpg"):
        shutil.copy(EXAMPLES / name, root / name)
    if labels_csv is not None:
        (root / "labels.csv").write_text(labels_csv, encoding="utf-8")
    return root


def test_training_photos_are_the_devices_model_inputs(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    split = load_split(folder, "train", log=lambda _: None)
    assert split.files == ("photo_tshirt.jpg",) and split.labels.tolist() == [0]
    # One source of truth: training sees exactly what classify computes for the same file.
    assert np.array_equal(split.images[0], preprocess(folder / "photo_tshirt.jpg"))


@pytest.mark.parametrize(
    ("labels_csv", "says"),
    [
        (None, "cannot read labels file"),
        ("", "needs a header"),
        ("file,label,split\nphoto_tshirt.jpg,0,train,extra\n", "labels.csv:2: more fields"),
        ("file,label,split\nphoto_tshirt.jpg,shoe,train\n", "labels.csv:2: label 'shoe'"),
        ("file,label,split\nphoto_tshirt.jpg,10,train\n", "labels.csv:2: label '10'"),
        ("file,class_name,split\nphoto_tshirt.jpg,Sock,train\n", "labels.csv:2: class_name 'Sock'"),
        ("file,label,split\nphoto_tshirt.jpg,0,train\ngone.jpg,3,train\n", "labels.csv:3: gone.jpg is missing"),
        ("file,label,split\n../photo_tshirt.jpg,0,train\n", "labels.csv:2: '../photo_tshirt.jpg' is not a plain"),
        ("file,label\nphoto_tshirt.jpg,0\n", "no 'split' column"),
        ("file,label,split\nphoto_tshirt.jpg,0,val\n", "no labelled photos in split 'train'"),
    ],
    ids=["missing", "empty", "long-row", "mistyped", "out-of-range", "unknown-class", "missing-photo",
         "path", "no-split", "empty-split"],
)
def test_a_bad_photo_folder_is_one_line_naming_file_and_row(tmp_path: Path, labels_csv: str | None,
                                                            says: str) -> None:
    folder = photo_folder(tmp_path, labels_csv)
    with pytest.raises(FmnistEdgeError, match=None) as caught:
        load_split(folder, "train", log=lambda _: None)
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_an_unreadable_photo_is_skipped_and_counted(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, GOOD + "broken.jpg,2,train\n")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    lines: list[str] = []
    split = load_split(folder, "train", log=lines.append)
    assert split.files == ("photo_tshirt.jpg",)
    assert len(split.unreadable) == 1 and "broken.jpg" in split.unreadable[0]
    assert lines == [f"skipped: {split.unreadable[0]}"]


def test_photo_augmentation_keeps_the_input_contract_and_is_seeded() -> None:
    images = np.stack([preprocess(EXAMPLES / "photo_tshirt.jpg"), preprocess(EXAMPLES / "photo_ankle_boot.jpg")])
    a = augment_photos(images, np.random.default_rng(3), PhotoAugmentConfig())
    b = augment_photos(images, np.random.default_rng(3), PhotoAugmentConfig())
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, images)
    # The item stays on a black background: the corners stay dark, as in the dataset.
    assert a[:, [0, 0, -1, -1], [0, -1, 0, -1]].max() < 40


def test_class_balanced_sampling_draws_rare_classes_as_often() -> None:
    labels = np.array([0] * 90 + [9] * 10)
    weights = class_balanced_weights(labels)
    assert weights[labels == 0].sum() == pytest.approx(0.5)
    assert weights[labels == 9].sum() == pytest.approx(0.5)


def test_a_photo_subset_keeps_each_class_share_and_grows_by_adding_photos() -> None:
    labels = np.array([0] * 100 + [3] * 80 + [9] * 20)
    photos = PhotoSplit(np.zeros((200, 28, 28), np.uint8), labels, tuple(f"{i}.jpg" for i in range(200)))
    small, large = subset_of(photos, 50, seed=4), subset_of(photos, 100, seed=4)
    assert np.bincount(small.labels).tolist() == [25, 0, 0, 20, 0, 0, 0, 0, 0, 5]
    assert len(large.files) == 100 and set(small.files) < set(large.files)  # nested: a learning curve adds photos
    assert subset_of(photos, 2, seed=4).labels.tolist() == [0, 3, 9]  # every class keeps at least one photo
    assert subset_of(photos, 200, seed=4).files == photos.files
    with pytest.raises(FmnistEdgeError, match="between 1 and the 200 training photos"):
        subset_of(photos, 201, seed=4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra")
def test_train_with_photos_records_photo_accuracy_each_epoch(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "2", "--photos", str(folder),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "fmnist_cnn.training.json").read_text())
    assert record["photos"]["train"] == 1 and record["photos"]["val"] == 1
    assert [len(row) and "photo_val_accuracy" in row for row in record["history"]] == [True, True]
    assert record["best_photo_val_accuracy"] in {row["photo_val_accuracy"] for row in record["history"]}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra")
def test_a_photo_run_resumes_from_another_folder_and_refuses_changed_photos(tmp_path: Path, monkeypatch) -> None:
    from fmnist_edge.train import loop

    finish_epoch = loop.Recorder.on_epoch_end

    def stop_after_the_first_epoch(self, epoch, logs=None):
        finish_epoch(self, epoch, logs)
        raise KeyboardInterrupt

    photo_folder(tmp_path / "photos")
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # started with a relative --photos ...
    monkeypatch.setattr(loop.Recorder, "on_epoch_end", stop_after_the_first_epoch)
    args = ["train", "--subset", "256", "--epochs", "2", "--photos", "photos", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 130
    monkeypatch.setattr(loop.Recorder, "on_epoch_end", finish_epoch)
    monkeypatch.chdir(tmp_path / "photos")  # ... resumed from elsewhere: "photos" is not here

    labels = tmp_path / "photos" / "labels.csv"
    labels.write_text(GOOD.replace(",0,train", ",3,train"), encoding="utf-8")
    changed = CliRunner().invoke(app, ["train", "--resume", "--out", str(out)])
    assert changed.exit_code == 2 and "labels.csv: changed since the run started" in changed.stderr

    labels.write_text(GOOD, encoding="utf-8")
    photo = tmp_path / "photos" / "photo_ankle_boot.jpg"  # a `val` photo replaced under its own name
    original = photo.read_bytes()
    photo.write_bytes((EXAMPLES / "photo_tshirt.jpg").read_bytes())
    replaced = CliRunner().invoke(app, ["train", "--resume", "--out", str(out)])
    assert replaced.exit_code == 2 and "its photos changed since the run started" in replaced.stderr

    photo.write_bytes(original)
    resumed = CliRunner().invoke(app, ["train", "--resume", "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    record = json.loads((out / "fmnist_cnn.training.json").read_text())
    assert record["status"] == "completed" and len(record["history"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra")
def test_a_photo_subset_without_photos_is_refused_before_training(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--photo-subset", "10", "--no-photos",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs photos" in result.stderr and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra")
def test_train_with_a_bad_photo_folder_stops_before_training(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos", "file,label,split\nphoto_tshirt.jpg,7x,train\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--subset", "256", "--epochs", "1", "--photos", str(folder),
                                      "--out", str(out)])
    assert result.exit_code == 2  # a bad request, like a bad option
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "labels.csv:2" in result.stderr
    assert "Traceback" not in result.output
    # nothing written: training never started (the folder's lock file, empty, is all that may be there)
    assert not out.exists() or [p.name for p in out.iterdir()] in ([], [LOCK_FILE])


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the [train] extra")
def test_a_missing_model_to_start_from_is_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    missing = str(tmp_path / "nope.keras")
    result = CliRunner().invoke(app, ["train", "--init", missing, "--photos", str(folder),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "nope.keras" in result.stderr and "Traceback" not in result.output


def _finished_run(folder: Path, photos: int, photo_val: float) -> None:
    folder.mkdir(parents=True)
    record = {"status": "completed", "photos": {"train": photos}, "wall_seconds": 60.0,
              "history": [{"val_accuracy": 0.9, "photo_val_accuracy": photo_val}]}
    (folder / "fmnist_cnn.training.json").write_text(json.dumps(record))


@pytest.mark.parametrize(("accuracies", "says"), [
    ((0.50, 0.55, 0.60, 0.65), "+5.0 ± 0.0 points per doubling"),
    ((0.60, 0.62, 0.58, 0.61), "not clearly above zero"),
])
def test_the_learning_curve_reads_finished_runs_and_their_slope(tmp_path: Path, accuracies, says: str) -> None:
    sizes = (50, 100, 200, 400)
    for size, accuracy in zip(sizes, accuracies, strict=True):
        _finished_run(tmp_path / f"n{size}-s0", size, accuracy)
    script = Path(__file__).resolve().parent.parent / "scripts" / "photo_learning_curve.py"
    # Every run is finished, so nothing trains (a missing photo folder would fail if it did).
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "no-photos"), "--out", str(tmp_path),
                             "--sizes", ",".join(map(str, sizes)), "--seeds", "0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| 400 | 0 | " in result.stdout and says in result.stdout
    if accuracies[0] == 0.50:  # 50% at 50 photos, +5 points per doubling: 75% at 50 * 2**5 photos
        assert "75% at about 1600 training photos" in result.stdout
