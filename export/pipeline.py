"""`fmnist-edge export`: convert, check parity, then (and only then) write models and the manifest.

Order of work, so that a failure leaves the previous artifacts untouched:
  1. refuse early if a target exists and --force was not given;
  2. convert every requested format in a temporary directory;
  3. run each through the runtime's own backend on the 10k test images and check parity
     against the Keras model's scores;
  4. only when all pass, derive the rest (unsure threshold, golden data, reference scores) in the
     same temporary directory, then move each file into place atomically and rewrite the manifest
     straight after, so the window in which models and manifest disagree is a few file moves.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_edge.common.atomic import write_bytes_atomic
from fmnist_edge.common.errors import ExportError
from fmnist_edge.common.keras_model import TRAINING_RECORD, load_keras_model
from fmnist_edge.export import convert, parity
from fmnist_edge.export.golden import GOLDEN_FORMAT, write_golden
from fmnist_edge.export.manifest import PHOTO_INPUTS_FILE, REFERENCE_FILE, build_manifest, file_entry, write_manifest
from fmnist_edge.export.metadata import add_to_onnx, add_to_tflite, model_metadata
from fmnist_edge.runtime.backends import load_backend, run_batched
from fmnist_edge.runtime.formats import EXPORTED, Format, by_name
from fmnist_edge.runtime.golden import GOLDEN_FILE
from fmnist_edge.runtime.manifest import MANIFEST_FILE
from fmnist_edge.train import data as fmnist_data


@dataclass(frozen=True)
class ExportOptions:
    kinds: tuple[str, ...] = ("tflite", "onnx")
    int8: bool = False
    calibration_size: int = 500
    seed: int = 0
    force: bool = False
    batch_size: int = 500
    photos: Path | None = None  # labelled photos with a `val` split: the unsure threshold must hold on them too
    # Tests of tiny smoke models relax these; the CLI never does, so nothing weaker ships.
    fp32_tolerance: parity.Tolerance = parity.FLOAT
    int8_tolerance: parity.Tolerance = parity.INT8

    def tolerance(self, precision: str) -> parity.Tolerance:
        return self.int8_tolerance if precision == "int8" else self.fp32_tolerance


def targets(options: ExportOptions) -> list[Format]:
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
) -> dict:
    """Export `model_path` (.keras) to `out_dir`; returns the manifest that was written."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    todo = targets(options)
    _refuse_existing(out_dir, todo, options.force)
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

    with tempfile.TemporaryDirectory(prefix="fmnist-edge-export-") as tmp:
        staging = Path(tmp)
        convert_to = _Converter(model, calibration_images(ds.train_images, options.calibration_size, options.seed),
                                staging)
        staged = []
        for fmt in todo:
            step(f"converting {fmt.name}")
            staged.append(_convert_and_check(fmt, convert_to, staging, test, reference, options, log))
        # Everything derived from the new models is staged too, so that once files start to move
        # into out_dir nothing slow or fallible is left before the manifest that lists them.
        unsure = _calibrate_unsure(staged, ds, model_path, log, options.photos, staging)
        published = _stage_derived(staging, staged, test, reference)
        if (staging / PHOTO_INPUTS_FILE).is_file():
            published.append(PHOTO_INPUTS_FILE)
        step(f"writing {len(staged)} models and {MANIFEST_FILE} to {out_dir}")
        _publish(staging, out_dir, published)
    entries = [file_entry(out_dir, fmt, report, options.tolerance(fmt.precision)) for fmt, _, report in staged]
    manifest = build_manifest(
        out_dir, model_path, keras_accuracy, entries, options, data_sha256=ds.sha256, unsure=unsure
    )
    write_manifest(out_dir, manifest)
    log(f"done in {time.time() - started:.0f}s")
    return manifest


@dataclass(frozen=True)
class LabelledImages:
    pixels: np.ndarray  # uint8 [10000, 28, 28, 1]
    labels: np.ndarray


Staged = tuple[Format, Path, parity.ParityReport]  # a converted model in the staging folder, and its parity


def _refuse_existing(out_dir: Path, todo: list[Format], force: bool) -> None:
    """Before any slow work: an existing model is replaced only with --force."""
    if force:
        return
    existing = [str(out_dir / f.filename) for f in todo if (out_dir / f.filename).exists()]
    if existing:
        raise ExportError(f"{', '.join(existing)} already exist; pass --force to replace them")


class _Converter:
    """Turns the Keras model into each format's bytes, with metadata embedded; the SavedModel and
    the float ONNX graph are built once and shared by the float and int8 conversions."""

    def __init__(self, model: Any, calibration: np.ndarray, work_dir: Path) -> None:
        self.model, self.calibration, self.work_dir = model, calibration, work_dir
        self._saved_model: Path | None = None
        self._onnx_fp32: Any = None

    def __call__(self, fmt: Format) -> bytes:
        metadata = model_metadata(fmt.precision)
        if fmt.kind == "tflite":
            return add_to_tflite(self._tflite(fmt.precision), metadata)
        return self._onnx(fmt.precision, metadata)

    def _tflite(self, precision: str) -> bytes:
        if self._saved_model is None:
            self._saved_model = convert.saved_model(self.model, self.work_dir / "saved_model")
        if precision == "int8":
            return convert.tflite_int8(self._saved_model, self.calibration)
        return convert.tflite_fp32(self._saved_model)

    def _onnx(self, precision: str, metadata: dict) -> bytes:
        import onnx

        if self._onnx_fp32 is None:
            self._onnx_fp32 = convert.onnx_fp32(self.model)
        proto = convert.onnx_int8(self._onnx_fp32, self.calibration) if precision == "int8" else self._onnx_fp32
        add_to_onnx(proto, metadata)
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
    return fmt, staged_path, report


def _stage_derived(staging: Path, staged: list[Staged], test: LabelledImages, reference: np.ndarray) -> list[str]:
    """Write the golden data (when the default model was exported) and the Keras reference scores
    beside the staged models; returns every file name to publish."""
    published = [fmt.filename for fmt, _, _ in staged]
    if any(fmt.name == GOLDEN_FORMAT for fmt, _, _ in staged):
        write_golden(staging, test.pixels[..., 0], test.labels, staging / by_name(GOLDEN_FORMAT).filename)
        published.append(GOLDEN_FILE)
    with (staging / REFERENCE_FILE).open("wb") as fh:
        np.savez_compressed(fh, logits=reference.astype(np.float32), labels=test.labels)
    published.append(REFERENCE_FILE)
    return published


def _publish(staging: Path, out_dir: Path, names: list[str]) -> None:
    """Move each staged file into out_dir atomically (the manifest follows straight after)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_bytes_atomic(out_dir / name, (staging / name).read_bytes())


def _calibrate_unsure(staged: list[Staged], ds: Any, model_path: Path, log: Callable[[str], None],
                      photos: Path | None = None, stage: Path | None = None) -> dict | None:
    """Calibrate on the validation split the model was selected on, rebuilt from its training record.

    Without the record that split is unknown, and calibrating on images the model trained on would
    set the threshold too low; the manifest then records none and the runtime uses its default.
    """
    import json

    from fmnist_edge.export.calibrate import unsure_threshold
    from fmnist_edge.runtime.classifier import mirror_averaged
    from fmnist_edge.runtime.formats import DEFAULT_FORMAT
    from fmnist_edge.train.train import TrainConfig, split

    staged_default = next((path for fmt, path, _ in staged if fmt.name == DEFAULT_FORMAT), None)
    if staged_default is None:
        return None
    record = model_path.parent / TRAINING_RECORD
    if not record.is_file():
        log(f"    no training record ({record.name}) beside the model: the unsure threshold is not calibrated")
        return None
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))["config"]
        config = TrainConfig(seed=int(saved["seed"]), val_size=int(saved["val_size"]), subset=saved.get("subset"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{record}: unreadable training record ({type(exc).__name__}: {exc})") from None
    _, (val_x, val_y) = split(ds.train_images, ds.train_labels, config)
    backend = load_backend(staged_default)
    probs = mirror_averaged(backend.run, val_x[..., None], 500)  # what classify's confidence is
    unsure = unsure_threshold(probs, val_y)
    log(f"    unsure threshold {unsure['threshold']:.3f} (flags {100 * unsure['flagged_fraction']:.1f}% "
        f"of validation images; accuracy {100 * (unsure['accuracy_flagged'] or 0):.1f}% flagged vs "
        f"{100 * (unsure['accuracy_not_flagged'] or 0):.1f}% not)")
    if photos is None:
        return unsure
    from fmnist_edge.export.calibrate import combined, photo_unsure_threshold
    from fmnist_edge.train.photos import VAL_SPLIT, load_split

    val_photos = load_split(photos, VAL_SPLIT, log)
    if stage is not None:  # the inputs the photo threshold was set on, so a test can recompute it anywhere
        with (stage / PHOTO_INPUTS_FILE).open("wb") as fh:
            np.savez_compressed(fh, images=val_photos.images, labels=val_photos.labels,
                                files=np.array(val_photos.files))
    on_photos = photo_unsure_threshold(mirror_averaged(backend.run, val_photos.images[..., None], 500),
                                       val_photos.labels)
    log(f"    photo threshold {on_photos['threshold']:.3f} (flags {100 * on_photos['flagged_fraction']:.1f}% of "
        f"{on_photos['validation_photos']} validation photos; {100 * (on_photos['accuracy_not_flagged'] or 0):.1f}% "
        "of the rest right)")
    return combined(unsure, on_photos)


class _Steps:
    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.n, self.total, self.log, self.t0 = 0, total, log, time.time()

    def __call__(self, message: str) -> None:
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {message}  (+{time.time() - self.t0:.0f}s)")
