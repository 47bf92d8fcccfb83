"""What a manifest must look like before anything in it is used: types, required fields, plain file
names, thresholds that mean something.

Why: valid JSON of the wrong shape gave tracebacks (an array, `"models": null`, a numeric
sha256), a NaN or negative `unsure_threshold` silently switched "unsure" off, and a
`default_model` of `../x` reached outside the folder. Every check here fails with one line that
names the field, which load_manifest turns into a ModelError (exit 2).

Only what the runtime reads is checked strictly; the rest (figures, provenance) must merely be
JSON, so a later export may add fields without breaking older runtimes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from fmnist_edge.runtime.errors import ModelError

SCHEMA_VERSION = 1  # what export writes (export/manifest.py) and the newest this runtime reads
MAX_MANIFEST_BYTES = 1 << 20  # export writes a few KiB; anything this big is not ours
_SHA256 = re.compile(r"[0-9a-f]{64}")
FILE_RECORDS = ("golden", "reference_logits", "photo_val_inputs")  # optional {file, sha256} objects


def is_plain_name(name: object) -> bool:
    """A file name in the manifest's own folder: no separators, no `..`, no control characters."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..")
            and not any(c in name for c in "/\\\0") and name.isprintable())


def check_manifest(document: object, path: Path) -> None:
    """Raise ModelError naming the first thing in `document` that the runtime cannot trust."""

    def fail(what: str) -> NoReturn:
        raise ModelError(f"{path}: malformed manifest: {what}")

    if not isinstance(document, dict):
        fail(f"a JSON object is expected, not {type(document).__name__}")
    schema = document.get("schema")
    if not _is_int(schema) or schema < 1:
        fail("`schema` must be a positive integer")
    if schema > SCHEMA_VERSION:
        fail(f"schema {schema} is newer than this fmnist-edge reads ({SCHEMA_VERSION}); upgrade fmnist-edge")
    models = document.get("models")
    if not isinstance(models, list):
        fail("`models` must be a list")
    seen: set[str] = set()
    for i, entry in enumerate(models):
        _check_file_record(entry, f"models[{i}]", fail)
        if entry["file"] in seen:
            fail(f"models[{i}]: {entry['file']} is listed twice")
        seen.add(entry["file"])
        for key in ("name", "format", "precision"):
            if key in entry and not isinstance(entry[key], str):
                fail(f"models[{i}].{key} must be a string")
        if "size_bytes" in entry and (not _is_int(entry["size_bytes"]) or entry["size_bytes"] < 0):
            fail(f"models[{i}].size_bytes must be a non-negative integer")
        if entry.get("max_abs_diff") is not None and not is_number_in(entry["max_abs_diff"], low=0.0):
            fail(f"models[{i}].max_abs_diff must be a finite number >= 0 or null")
        if entry.get("unsure_threshold") is not None and not is_number_in(entry["unsure_threshold"], low=0.0, high=1.0):
            fail(f"models[{i}].unsure_threshold must be null or a number from 0 to 1")
    default = document.get("default_model")
    if default is not None and (not is_plain_name(default) or default not in seen):
        fail("`default_model` must be null or the plain name of a file listed in `models`")
    threshold = document.get("unsure_threshold")
    if threshold is not None and not is_number_in(threshold, low=0.0, high=1.0):
        fail(f"`unsure_threshold` must be null or a number from 0 to 1, not {threshold!r}")
    if document.get("unsure_calibration") is not None and not isinstance(document["unsure_calibration"], dict):
        fail("`unsure_calibration` must be null or an object")
    for key in FILE_RECORDS:
        if document.get(key) is not None:
            _check_file_record(document[key], key, fail)


def _check_file_record(record: object, where: str, fail: Callable[[str], NoReturn]) -> None:
    if not isinstance(record, dict):
        fail(f"{where} must be an object")
    if not is_plain_name(record.get("file")):
        fail(f"{where}.file must be a plain file name in the manifest's folder, not {record.get('file')!r}")
    if not isinstance(record.get("sha256"), str) or not _SHA256.fullmatch(record["sha256"]):
        fail(f"{where}.sha256 must be 64 lowercase hex digits")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number_in(value: object, low: float = -math.inf, high: float = math.inf) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)
