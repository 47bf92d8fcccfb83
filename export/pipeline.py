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

import numpy as np

from fmnist_edge.export import convert, parity
from fmnist_edge.export.golden import GOLDEN_FORMAT, write_golden
from fmnist_edge.export.manifest import PHOTO_INPUTS_FILE, REFERENCE_FILE, build_manifest, file_entry, write_manifest
from fmnist_edge.export.metadata import add_to_onnx, add_to_tflite, model_metadata
from fmnist_edge.runtime.atomic import write_bytes_atomic
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.errors import ExportError, ModelError
from fmnist_edge.runtime.formats import EXPORTED, TRAINING_RECORD, Format, by_name
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


def run_scores(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([score(images[i : i + batch]) for i in range(0, len(images), batch)])


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
    if not options.force:
        existing = [str(out_dir / f.filename) for f in todo if (out_dir / f.filename).exists()]
        if existing:
            raise ExportError(f"{', '.join(existing)} already exist; pass --force to replace them")
    if not model_path.is_file():
        raise ModelError(f"model file not found: {model_path}")

    started = time.time()
    step = _Steps(len(todo) + 3, log)
    import keras

    step(f"loading {model_path}")
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelError(f"{model_path}: cannot load Keras model ({str(exc).splitlines()[0]})") from None
    ds = fmnist_data.load(data_dir)
    test_x, test_y = ds.test_images[..., None], ds.test_labels
    calibration = calibration_images(ds.train_images, options.calibration_size, options.seed)

    step("scoring the 10k test images with the Keras model (the parity reference)")
    reference = run_scores(
        lambda x: model(x.astype(np.float32), training=False).numpy(), test_x, options.batch_size
    )
    keras_accuracy = float((reference.argmax(1) == test_y).mean())
    log(f"    Keras test accuracy {100 * keras_accuracy:.2f}%")

    staged: list[tuple[Format, Path, parity.ParityReport]] = []
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-export-") as tmp:
        tmp_dir = Path(tmp)
        sm_dir = None
        fp32_onnx = None
        for fmt in todo:
            step(f"converting {fmt.name}")
            t0 = time.time()
            metadata = model_metadata(fmt.precision)
            if fmt.kind == "tflite":
                sm_dir = sm_dir or convert.saved_model(model, tmp_dir / "saved_model")
                raw = (
                    convert.tflite_int8(sm_dir, calibration)
                    if fmt.precision == "int8"
                    else convert.tflite_fp32(sm_dir)
                )
                blob = add_to_tflite(raw, metadata)
            else:
                import onnx

                fp32_onnx = fp32_onnx or convert.onnx_fp32(model)
                proto = convert.onnx_int8(fp32_onnx, calibration) if fmt.precision == "int8" else fp32_onnx
                add_to_onnx(proto, metadata)
                onnx.checker.check_model(proto, full_check=True)
                blob = proto.SerializeToString()
            staged_path = tmp_dir / fmt.filename
            staged_path.write_bytes(blob)
            backend = load_backend(staged_path, threads=None)
            scores = run_scores(backend.run, test_x, options.batch_size)
            report = parity.compare(fmt.name, scores, reference, test_y, options.tolerance(fmt.precision))
            log(f"    {report.summary()}  [{time.time() - t0:.0f}s, {len(blob) / 1024:.0f} KiB]")
            parity.require(report)
            staged.append((fmt, staged_path, report))

        # Everything derived from the new models is staged too, so that once files start to move
        # into out_dir nothing slow or fallible is left before the manifest that lists them.
        unsure = _calibrate_unsure(staged, ds, model_path, log, options.photos, tmp_dir)
        published = [fmt.filename for fmt, _, _ in staged]
        if (tmp_dir / PHOTO_INPUTS_FILE).is_file():
            published.append(PHOTO_INPUTS_FILE)
        if any(fmt.name == GOLDEN_FORMAT for fmt, _, _ in staged):
            write_golden(tmp_dir, ds.test_images, test_y, tmp_dir / by_name(GOLDEN_FORMAT).filename)
            published.append(GOLDEN_FILE)
        with (tmp_dir / REFERENCE_FILE).open("wb") as fh:
            np.savez_compressed(fh, logits=reference.astype(np.float32), labels=test_y)
        published.append(REFERENCE_FILE)

        step(f"writing {len(staged)} models and {MANIFEST_FILE} to {out_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in published:
            write_bytes_atomic(out_dir / name, (tmp_dir / name).read_bytes())
    entries = [file_entry(out_dir, fmt, report, options.tolerance(fmt.precision)) for fmt, _, report in staged]
    manifest = build_manifest(
        out_dir, model_path, keras_accuracy, entries, options, data_sha256=ds.sha256, unsure=unsure
    )
    write_manifest(out_dir, manifest)
    log(f"done in {time.time() - started:.0f}s")
    return manifest


def _calibrate_unsure(staged, ds, model_path: Path, log: Callable[[str], None],
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
