"""The training record (`fmnist_cnn.training.json`): a typed, versioned schema, written and read here only.

`train` writes it beside the model after every epoch; `train --resume`, `train --init`, `export`
and `evaluate` read it back. Every reader goes through `read_record`, which checks each field's
type and names the first one that is wrong, so a hand-edited, truncated or foreign record is one
line, never a KeyError three modules away. A rename of a TrainConfig field is a new RECORD_VERSION
with its conversion in `_upgrade`, so older records keep working or are refused by name.

Versions:
  1  fmnist-edge 0.1.0 (no `record_version` field): also carried `seed` (a copy of config.seed),
     `teacher` and config fields `jit_compile` and `distill` (distillation, since removed).
  2  this layout.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from fmnist_edge.common.atomic import write_text_atomic
from fmnist_edge.common.errors import RecordError
from fmnist_edge.common.keras_model import TRAINING_RECORD
from fmnist_edge.train.config import TrainConfig
from fmnist_edge.train.precision import PRECISIONS

RECORD_VERSION = 2
RECORD_FILE = TRAINING_RECORD
STATUSES = ("running", "interrupted", "completed")

__all__ = ["RECORD_FILE", "RECORD_VERSION", "InputFile", "PhotosUsed", "RecordError", "TrainingRecord",
           "parse_record", "read_record", "validation_score", "write_record"]


@dataclass
class InputFile:
    """A file the run read (the --init model): where it was, and the hash of the bytes read."""

    file: str
    sha256: str
    absolute: str | None = None


@dataclass
class PhotosUsed:
    """The photo folder a run read; `photos_sha256` covers every photo's bytes, not only labels.csv."""

    dir: str
    labels_sha256: str
    train: int
    val: int
    unreadable: list[str] = field(default_factory=list)
    absolute: str | None = None
    photos_sha256: str | None = None  # None in records written before it was kept: resume then checks labels only


@dataclass
class TrainingRecord:
    config: TrainConfig
    train_size: int
    val_size: int
    data_source: str
    data_sha256: dict[str, str]
    selection: str | None = None  # what picked the checkpoint, in words
    photos: PhotosUsed | None = None
    init: InputFile | None = None
    git_commit: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    params: int | None = None
    macs_per_image: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    best_photo_val_accuracy: float | None = None
    status: str = "running"
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    resumed: list[dict[str, Any]] = field(default_factory=list)
    seed_states: list[list[int]] | None = None  # Dropout's random streams after the last epoch (resume)
    record_version: int = RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def validation_score(row: dict[str, float]) -> float:
    """An epoch's score on held-out data, from its history row: `select="best"` keeps the epoch with the
    highest, and `tune` ranks and prunes trials by it. With photos it is the mean of the dataset and photo
    validation accuracies: the photos are what they are mixed in for, the dataset is what must not regress."""
    if "photo_val_accuracy" in row:
        return (row["val_accuracy"] + row["photo_val_accuracy"]) / 2
    return row["val_accuracy"]


def write_record(record: TrainingRecord, path: Path) -> None:
    write_text_atomic(path, record.to_json())


def read_record(path: Path) -> TrainingRecord:
    """The record at `path`, checked field by field; RecordError names the file and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no training record") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path}: unreadable training record ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_record(data, str(path))


def parse_record(data: Any, where: str = "training record") -> TrainingRecord:
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a training record (a JSON object is expected)")
    version = data.get("record_version", 1)
    if type(version) is not int or not 1 <= version <= RECORD_VERSION:
        raise RecordError(f"{where}: record_version {version!r} is not one this fmnist-edge reads "
                          f"(1 to {RECORD_VERSION}); it was written by another version")
    record = _build(TrainingRecord, _upgrade(dict(data), version, where), where)
    if record.status not in STATUSES:
        raise RecordError(f"{where}: field status {record.status!r} is not one of {', '.join(STATUSES)}")
    if record.config.select not in ("last", "best"):
        raise RecordError(f"{where}: field config.select {record.config.select!r} is not last or best")
    if record.config.precision not in PRECISIONS:
        raise RecordError(f"{where}: field config.precision {record.config.precision!r} is not one of "
                          f"{', '.join(PRECISIONS)}")
    return record


def _upgrade(data: dict, version: int, where: str) -> dict:
    """An older record in today's layout; what cannot be carried over is refused by field name."""
    if version == 1:
        data.pop("seed", None)  # a copy of config.seed
        if data.pop("teacher", None) is not None:
            raise RecordError(f"{where}: field teacher: distillation from a teacher was removed; "
                              "this record's run cannot be resumed or re-read")
        config = data.get("config")
        if isinstance(config, dict):
            config = dict(config)
            config.pop("jit_compile", None)  # XLA or not: the same model, run by other kernels
            if config.pop("distill", 0.0) not in (0, 0.0):
                raise RecordError(f"{where}: field config.distill: distillation was removed; "
                                  "this record's run cannot be resumed or re-read")
            data["config"] = config
        data["record_version"] = RECORD_VERSION
    config = data.get("config")
    if isinstance(config, dict) and "precision" not in config:
        data["config"] = {**config, "precision": "float32"}  # written before bfloat16 training existed
    return data


def _build(cls: type, data: Any, where: str, path: str = "") -> Any:
    """An instance of dataclass `cls` from JSON `data`, every field type-checked; `path` names the
    object inside the record (config.model) in the error."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: {'field ' + path.rstrip('.') if path else 'the record'} is "
                          f"{json.dumps(data)[:60]}, not an object")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise RecordError(f"{where}: unknown field {path + str(key)!r} (written by another version?)")
    values = {}
    for name, spec in known.items():
        if name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise RecordError(f"{where}: field {path}{name} is missing")
            continue
        values[name] = _convert(hints[name], data[name], where, f"{path}{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, where: str, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where, path)
    elif hint is Any:
        return value
    elif is_dataclass(hint):
        return _build(hint, value, where, f"{path}.")
    elif hint is bool:
        if type(value) is bool:
            return value
    elif hint is int:
        if type(value) is int:
            return value
    elif hint is float:
        if type(value) in (int, float):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where, path) for v in value)
        if len(value) == len(args):
            return tuple(_convert(a, v, where, path) for a, v in zip(args, value, strict=True))
    elif origin is list and isinstance(value, list):
        return [_convert(args[0], v, where, path) for v in value]
    elif origin is dict and isinstance(value, dict):
        return {_convert(args[0], k, where, path): _convert(args[1], v, where, path) for k, v in value.items()}
    raise RecordError(f"{where}: field {path} is {json.dumps(value)[:60]}, not {_spelt(hint)}")


def _spelt(hint: Any) -> str:
    """A type as a reader of the JSON would say it."""
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or is_dataclass(hint):
        return "an object"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _spelt(a) for a in typing.get_args(hint))
    return str(hint)
