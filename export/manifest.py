"""Write artifacts/manifest.json: what each shipped model is, where it came from, how it scored."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fmnist_edge.common.errors import ExportError
from fmnist_edge.common.keras_model import TRAINING_RECORD
from fmnist_edge.common.provenance import git_commit, versions
from fmnist_edge.export.golden import GOLDEN_FORMAT, golden_entry
from fmnist_edge.export.options import Tolerance
from fmnist_edge.export.parity import ParityReport
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import DEFAULT_FORMAT, Format, by_name
from fmnist_edge.runtime.golden import GOLDEN_FILE
from fmnist_edge.runtime.machine import cpu_model, cpuinfo, int8_features
from fmnist_edge.runtime.manifest import MANIFEST_FILE, load_manifest, sha256_file
from fmnist_edge.runtime.manifest_schema import SCHEMA_VERSION  # the one the runtime checks against
from fmnist_edge.runtime.spec import CLASS_NAMES, PREPROCESS_VERSION, input_contract
from fmnist_edge.runtime.version import VERSION

REFERENCE_FILE = "fmnist_cnn_keras_test_logits.npz"  # Keras scores on the 10k test set, for CI parity
PHOTO_INPUTS_FILE = "photo_val_inputs.npz"  # the validation photos' 28x28 inputs the photo threshold was set on


def file_entry(fmt: Format, sha256: str, size: int, report: ParityReport, tolerance: Tolerance,
               unsure: dict | None = None) -> dict:
    """One model's record, with the hash and size of the bytes that passed parity, and its own
    "unsure" threshold (None: not calibrated; classify then flags nothing and says why)."""
    return {
        "name": fmt.name,
        "file": fmt.filename,
        "format": fmt.kind,
        "precision": fmt.precision,
        "size_bytes": size,
        "sha256": sha256,
        "test_accuracy": round(report.accuracy, 6),
        "agreement_with_keras": round(report.agreement, 6),
        "accuracy_delta_pp": round(report.accuracy_delta_pp, 3),
        # For int8 the score gap is reported but not bounded: quantized logits move by design.
        "max_abs_diff": float(f"{report.max_abs_diff:.3e}"),
        "checked": asdict(tolerance),
        "unsure_threshold": unsure["threshold"] if unsure else None,
        "unsure_calibration": unsure,
    }


def build_manifest(out_dir: Path, staging: Path, model_path: Path, keras_accuracy: float, entries: list[dict],
                   options: Any, data_sha256: dict[str, str], unsure: dict | None = None) -> dict:
    """The manifest to publish. Files written by this export are read from `staging`; models of
    other formats from the previous export of the same Keras model are kept, with what was derived
    from them, and must still be in `out_dir`."""
    previous = _load_previous(out_dir)
    source_sha = sha256_file(model_path)
    record = model_path.parent / TRAINING_RECORD

    def where(name: str) -> Path:
        return staging / name if (staging / name).is_file() else out_dir / name

    # Keep entries for formats not exported this time, if they came from the same Keras model; so
    # does what was derived from them. Anything else in out_dir is a leftover the runtime refuses.
    same_source = previous.get("source", {}).get("sha256") == source_sha
    kept = [
        m for m in previous.get("models", [])
        if same_source and m["file"] not in {e["file"] for e in entries} and (out_dir / m["file"]).is_file()
    ]
    models = {m["file"]: m for m in [*kept, *entries]}
    default = by_name(DEFAULT_FORMAT).filename
    if unsure is None and same_source and default in models:
        unsure = previous.get("unsure_calibration")
    photo_inputs = where(PHOTO_INPUTS_FILE)
    return {
        "schema": SCHEMA_VERSION,
        "created": created(),
        "labels": list(CLASS_NAMES),
        "input": input_contract(),
        "preprocess_version": PREPROCESS_VERSION,
        "default_model": default if default in models else None,  # None: classify needs --model
        "unsure_threshold": unsure["threshold"] if unsure else None,  # None: the runtime's default
        "unsure_calibration": unsure,
        "source": {
            "file": model_path.name,
            "sha256": source_sha,
            "test_accuracy": round(keras_accuracy, 6),
            "training_record": record.name if record.is_file() else None,
            "training_record_sha256": sha256_file(record) if record.is_file() else None,
        },
        "reference_logits": {"file": REFERENCE_FILE, "sha256": sha256_file(where(REFERENCE_FILE))},
        "photo_val_inputs": ({"file": PHOTO_INPUTS_FILE, "sha256": sha256_file(photo_inputs)}
                             if unsure and "photos" in unsure and photo_inputs.is_file() else None),
        # selftest data {file, sha256, images}: only when recorded from the int8 TFLite listed here
        "golden": golden_entry(where(GOLDEN_FILE).parent,
                               models.get(by_name(GOLDEN_FORMAT).filename, {}).get("sha256")),
        "calibration": {
            "images": options.calibration_size,
            "seed": options.seed,
            "from": "Fashion-MNIST training images (never test images)",
        },
        "data_sha256": data_sha256,
        # Provenance: with "created", the only fields that differ between two exports of one Keras model
        # made with the same package versions on the same CPU (export --verify compares the rest).
        "export_git_commit": git_commit(Path(__file__).resolve().parent),
        "fmnist_edge_version": VERSION,
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "int8_features": int8_features(cpuinfo())},
        "tools": tool_versions(),
        "models": sorted(models.values(), key=lambda m: m["file"]),
    }


PROVENANCE_FIELDS = ("created", "export_git_commit", "fmnist_edge_version", "machine", "tools")


def tool_versions() -> dict[str, str | None]:
    """The packages whose versions decide an export's bytes."""
    return versions("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


def created() -> str:
    """Now, or $SOURCE_DATE_EPOCH when it is set (reproducible builds: a rebuild gives the same manifest)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        moment = time.gmtime(int(epoch)) if epoch else time.gmtime()
    except (ValueError, OverflowError, OSError):
        raise ExportError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds since 1970") from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def _load_previous(out_dir: Path) -> dict:
    """The manifest being replaced; one that is missing or fails the schema keeps nothing."""
    if not (out_dir / MANIFEST_FILE).is_file():
        return {}
    try:
        return load_manifest(out_dir)
    except ModelError:
        return {}
