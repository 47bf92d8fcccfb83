"""`fmnist-edge export`: convert, check parity, then (and only then) publish models and the manifest.

Order of work, so that a failure or a kill leaves the previous export complete and usable:
  1. check the arguments, lock --out against a second export (common/lock.py), remove what a
     killed export left there, refuse existing models without --force, and check that --out has
     room: all before any slow work;
  2. convert every requested format into a staging folder inside --out, hashing each model's
     bytes as they are written;
  3. run each through the runtime's own backend on the 10k test images and check parity
     against the Keras model's scores; the hash recorded is of those very bytes;
  4. only when all pass, derive the rest (unsure thresholds; each model's metadata, written
     once with its threshold and checked to leave its scores unchanged; golden data; reference
     scores) in staging, then publish (export/publish.py): the manifest is the commit point, so at every
     instant the folder is the old export or the new one, each complete.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_edge.common.errors import ExportError
from fmnist_edge.common.keras_model import TRAINING_RECORD, load_keras_model
from fmnist_edge.common.lock import FolderLock
from fmnist_edge.export import convert, parity
from fmnist_edge.export.golden import GOLDEN_FORMAT, write_golden
from fmnist_edge.export.manifest import PHOTO_INPUTS_FILE, REFERENCE_FILE, build_manifest, file_entry
from fmnist_edge.export.metadata import model_metadata, set_metadata
from fmnist_edge.export.options import ExportOptions
from fmnist_edge.export.publish import check_room, publish, remove_leftovers, staging_folder
from fmnist_edge.runtime.backends import load_backend, run_batched
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import DEFAULT_FORMAT, EXPORTED, Format, by_name
from fmnist_edge.runtime.manifest import MANIFEST_FILE
from fmnist_edge.train import data as fmnist_data

MIN_CALIBRATION = 10
TRAIN_IMAGES = fmnist_data.FILES["train_images"].shape[0]  # int8 calibration draws from these




def targets(options: ExportOptions) -> list[Format]:
    """The formats to export; an empty or unknown --formats is refused (`--formats ,` once exported
    nothing and still rewrote the manifest, de-listing every model)."""
    if not options.kinds:
        raise ExportError("--formats names no format; choose from tflite, onnx (comma-separated)")
    unknown = set(options.kinds) - {f.kind for f in EXPORTED}
    if unknown:
        raise ExportError(f"unknown format {', '.join(sorted(unknown))}; choose from tflite, onnx")
    precisions = ("fp32", "int8") if options.int8 else ("fp32",)
    return [f for f in EXPORTED if f.kind in options.kinds and f.precision in precisions]


def calibration_images(images: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed-seed sample of *training* images, [size, 28, 28, 1] uint8. Never test images."""
    pick = np.random.default_rng(seed).choice(len(images), size=size, replace=False)
    return images[np.sort(pick)][..., None]


def export(
    model_path: Path,
    out_dir: Path,
    options: ExportOptions,
    data_dir: Path | None = None,
    log: Callable[[str], None] = print,
    hook: Callable[[str], None] | None = None,
) -> dict:
    """Export `model_path` (.keras) to `out_dir`; returns the manifest that was published.
    `hook(step)` is called at each publishing step (tests stop the process there)."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    todo = targets(options)
    check_options(options)
    if not model_path.is_file():
        raise ModelError(f"model file not found: {model_path}")
    training_record(model_path)  # a record export cannot read is refused now, not after minutes of converting
    _make_folder(out_dir)
    with FolderLock(out_dir):
        left = remove_leftovers(out_dir)
        if left:
            log(f"removed what an interrupted export left in {out_dir}: {', '.join(sorted(left))}")
        _refuse_existing(out_dir, todo, options.force)
        check_room(out_dir, _room_needed(model_path, todo))
        with staging_folder(out_dir) as staging:
            manifest = _export_into(staging, model_path, out_dir, todo, options, data_dir, log)
            publish(out_dir, staging, manifest, hook or (lambda step: None))
    return manifest


def check_options(options: ExportOptions) -> None:
    """The arguments, before any work: a bad --calibration or --seed used to fail after the model was loaded."""
    if not MIN_CALIBRATION <= options.calibration_size <= TRAIN_IMAGES:
        raise ExportError(f"--calibration {options.calibration_size}: choose {MIN_CALIBRATION} to {TRAIN_IMAGES} "
                          "(training images)")
    if not 0 <= options.seed < 2**63:
        raise ExportError(f"--seed {options.seed}: choose a whole number from 0 to 2**63 - 1")


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})") from None


def _room_needed(model_path: Path, todo: list[Format]) -> int:
    """A generous bound on the bytes staged and published: no export file is larger than the float
    Keras model; the SavedModel and ONNX graph built on the way are about twice its size; each new
    file exists twice while published (content-addressed copy and link or copy); plus 64 MiB."""
    return 64 * 2**20 + model_path.stat().st_size * (2 * len(todo) + 4)


def _export_into(staging: Path, model_path: Path, out_dir: Path, todo: list[Format], options: ExportOptions,
                 data_dir: Path | None, log: Callable[[str], None]) -> dict:
    """Steps 2-4 in the staging folder; returns the manifest to publish (with the usual file names)."""
    started = time.time()
    step = _Steps(len(todo) + 3, log)
    step(f"loading {model_path}")
    model = load_keras_model(model_path)
    ds = fmnist_data.load(data_dir)
    test = LabelledImages(ds.test_images[..., None], ds.test_labels)

    step("scoring the 10k test images with the Keras model (the parity reference)")
    reference = run_batched(lambda x: model(x.astype(np.float32), training=False).numpy(), test.pixels,
                            options.batch_size)
    keras_accuracy = float((reference.argmax(1) == test.labels).mean())
    log(f"    Keras test accuracy {100 * keras_accuracy:.2f}%")

    convert_to = _Converter(model, calibration_images(ds.train_images, options.calibration_size, options.seed),
                            staging / "work")
    (staging / "work").mkdir()
    staged = []
    for fmt in todo:
        step(f"converting {fmt.name}")
        staged.append(_convert_and_check(fmt, convert_to, staging, test, reference, options, log))
    unsure = _calibrate_unsure(staged, ds, model_path, log, options.photos, staging)
    staged = [_embed_metadata(model, unsure.get(model.fmt.filename), staging, test, options) for model in staged]
    _stage_derived(staging, staged, test, reference)
    entries = [file_entry(m.fmt, m.sha256, m.size, m.report, options.tolerance(m.fmt.precision),
                          unsure.get(m.fmt.filename)) for m in staged]
    manifest = build_manifest(out_dir, staging, model_path, keras_accuracy, entries, options,
                              data_sha256=ds.sha256, unsure=unsure.get(by_name(DEFAULT_FORMAT).filename))
    step(f"publishing {len(staged)} models and {MANIFEST_FILE} in {out_dir}")
    log(f"done in {time.time() - started:.0f}s")
    return manifest


@dataclass(frozen=True)
class LabelledImages:
    pixels: np.ndarray  # uint8 [10000, 28, 28, 1]
    labels: np.ndarray


@dataclass(frozen=True)
class Staged:
    """A converted model in the staging folder: the SHA-256 and size of the bytes that passed parity
    (hashed as written, not re-read from disk later), its parity report and the scores it gave."""

    fmt: Format
    sha256: str
    size: int
    report: parity.ParityReport
    scores: np.ndarray


def _refuse_existing(out_dir: Path, todo: list[Format], force: bool) -> None:
    """Before any slow work: an existing model is replaced only with --force."""
    if force:
        return
    existing = [str(out_dir / f.filename) for f in todo if (out_dir / f.filename).exists()]
    if existing:
        raise ExportError(f"{', '.join(existing)} already exist; pass --force to replace them")


class _Converter:
    """Turns the Keras model into each format's bytes (our metadata is added after calibration, by
    `_embed_metadata`); the SavedModel and the float ONNX graph are built once and shared by the
    float and int8 conversions."""

    def __init__(self, model: Any, calibration: np.ndarray, work_dir: Path) -> None:
        self.model, self.calibration, self.work_dir = model, calibration, work_dir
        self._saved_model: Path | None = None
        self._onnx_fp32: Any = None

    def __call__(self, fmt: Format) -> bytes:
        return self._tflite(fmt.precision) if fmt.kind == "tflite" else self._onnx(fmt.precision)

    def _tflite(self, precision: str) -> bytes:
        if self._saved_model is None:
            self._saved_model = convert.saved_model(self.model, self.work_dir / "saved_model")
        if precision == "int8":
            return convert.tflite_int8(self._saved_model, self.calibration)
        return convert.tflite_fp32(self._saved_model)

    def _onnx(self, precision: str) -> bytes:
        import onnx

        if self._onnx_fp32 is None:
            self._onnx_fp32 = convert.onnx_fp32(self.model)
        proto = convert.onnx_int8(self._onnx_fp32, self.calibration) if precision == "int8" else self._onnx_fp32
        onnx.checker.check_model(proto, full_check=True)
        return proto.SerializeToString()


def _convert_and_check(
    fmt: Format,
    convert_to: _Converter,
    staging: Path,
    test: LabelledImages,
    reference: np.ndarray,
    options: ExportOptions,
    log: Callable[[str], None],
) -> Staged:
    """Convert one format into the staging folder and check it, through the runtime's own backend,
    against the Keras scores; ParityError leaves out_dir untouched."""
    t0 = time.time()
    blob = convert_to(fmt)
    staged_path = staging / fmt.filename
    staged_path.write_bytes(blob)
    scores = run_batched(load_backend(staged_path, threads=None).run, test.pixels, options.batch_size)
    report = parity.compare(fmt.name, scores, reference, test.labels, options.tolerance(fmt.precision))
    log(f"    {report.summary()}  [{time.time() - t0:.0f}s, {len(blob) / 1024:.0f} KiB]")
    parity.require(report)
    return Staged(fmt, hashlib.sha256(blob).hexdigest(), len(blob), report, scores)


def _embed_metadata(model: Staged, unsure: dict | None, staging: Path, test: LabelledImages,
                    options: ExportOptions) -> Staged:
    """Write the contract into the model: labels, input, preprocessing version, and its own unsure
    threshold, known only now, so that a model copied without its manifest still flags what it
    should. The rewritten bytes must give the very scores that passed parity (metadata never
    reaches the graph); the hash is of the rewritten bytes."""
    threshold = unsure["threshold"] if unsure else None
    path = staging / model.fmt.filename
    blob = set_metadata(path.read_bytes(), model.fmt.kind, model_metadata(model.fmt.precision, threshold))
    path.write_bytes(blob)
    scores = run_batched(load_backend(path, threads=None).run, test.pixels, options.batch_size)
    if not np.array_equal(scores, model.scores):
        raise ExportError(f"{model.fmt.name}: writing the metadata into the model changed its scores")
    return Staged(model.fmt, hashlib.sha256(blob).hexdigest(), len(blob), model.report, scores)


def _stage_derived(staging: Path, staged: list[Staged], test: LabelledImages, reference: np.ndarray) -> None:
    """Write the golden data (when the default model was exported) and the Keras reference scores
    beside the staged models."""
    if any(m.fmt.name == GOLDEN_FORMAT for m in staged):
        write_golden(staging, test.pixels[..., 0], test.labels, staging / by_name(GOLDEN_FORMAT).filename)
    with (staging / REFERENCE_FILE).open("wb") as fh:
        np.savez_compressed(fh, logits=reference.astype(np.float32), labels=test.labels)


def _calibrate_unsure(staged: list[Staged], ds: Any, model_path: Path, log: Callable[[str], None],
                      photos: Path | None, stage: Path) -> dict[str, dict]:
    """Each exported model's own "unsure" calibration, by file name: on the validation split the model
    was selected on (rebuilt from its training record) and, with `photos`, on the validation photos.

    Every model gets its own threshold because their probabilities differ a little (int8 against
    float, TFLite against ONNX kernels), and the runtime applies the threshold of the model it runs.
    Without the training record the split is unknown, and calibrating on images the model trained
    on would set the threshold too low: no model then gets a threshold, and classify says so.
    """
    from fmnist_edge.export.calibrate import combined, photo_unsure_threshold, unsure_threshold
    from fmnist_edge.runtime.classifier import mirror_averaged
    from fmnist_edge.train.split import split

    record = training_record(model_path)
    if record is None:
        log(f"    no training record ({TRAINING_RECORD}) beside the model: the unsure threshold is not calibrated")
        return {}
    config = record.config
    _, (val_x, val_y) = split(ds.train_images, ds.train_labels, config)
    val_photos = None
    if photos is None:
        log("    no validation photos (`fmnist-edge fetch-photos` downloads them): the unsure threshold is set on "
            "dataset images only")
    else:
        val_photos = validation_photos(photos, log)
        with (stage / PHOTO_INPUTS_FILE).open("wb") as fh:  # the inputs the photo threshold was set on, so
            np.savez_compressed(fh, images=val_photos.images, labels=val_photos.labels,  # a test can recompute it
                                files=np.array(val_photos.files))
    calibrations = {}
    for fmt in (m.fmt for m in staged):
        backend = load_backend(stage / fmt.filename)
        on_dataset = unsure_threshold(mirror_averaged(backend.run, val_x[..., None], 500), val_y)
        on_photos = None
        if val_photos is not None:
            on_photos = photo_unsure_threshold(mirror_averaged(backend.run, val_photos.images[..., None], 500),
                                               val_photos.labels)
        calibrations[fmt.filename] = combined(on_dataset, on_photos)
        photo_part = ("" if on_photos is None else
                      f"; photos {on_photos['threshold']:.3f}, flags {100 * on_photos['flagged_fraction']:.1f}% of "
                      f"{on_photos['validation_photos']}, {100 * (on_photos['accuracy_not_flagged'] or 0):.1f}% "
                      "of the rest right")
        log(f"    {fmt.name}: unsure threshold {calibrations[fmt.filename]['threshold']:.3f} (dataset "
            f"{on_dataset['threshold']:.3f}, flags {100 * on_dataset['flagged_fraction']:.1f}%{photo_part})")
    return calibrations


def training_record(model_path: Path) -> Any:
    """The training record beside the model, checked (train/record.py); None when there is none."""
    from fmnist_edge.train.record import read_record

    path = model_path.parent / TRAINING_RECORD
    return read_record(path) if path.is_file() else None


def validation_photos(photos: Path, log: Callable[[str], None]) -> Any:
    """The `val` photos of a labelled folder, preprocessed; or, given a photo_val_inputs.npz that an
    export wrote, the very 28x28 inputs it recorded (export --verify re-uses them, so verifying
    needs no photo download)."""
    from fmnist_edge.train.photos import VAL_SPLIT, PhotoSplit, load_split

    if photos.is_dir():
        return load_split(photos, VAL_SPLIT, log)
    try:
        with np.load(photos, allow_pickle=False) as saved:
            return PhotoSplit(saved["images"], saved["labels"], tuple(str(f) for f in saved["files"]))
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{photos}: neither a photo folder nor an export's {PHOTO_INPUTS_FILE} ({exc})") from None


class _Steps:
    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.n, self.total, self.log, self.t0 = 0, total, log, time.time()

    def __call__(self, message: str) -> None:
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {message}  (+{time.time() - self.t0:.0f}s)")
