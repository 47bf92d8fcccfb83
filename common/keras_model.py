"""The float Keras model as train/ writes it and export/ and evaluate read it: its training
record's name, and one loader that turns Keras's many exception types into a ModelError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmnist_edge.runtime.errors import ModelError, reraise_as
from fmnist_edge.runtime.formats import MODEL_STEM

TRAINING_RECORD = f"{MODEL_STEM}.training.json"  # train writes it beside the .keras; export and evaluate find it there


def training_record_for(model_path: Path) -> Path | None:
    """The training record beside a model (exported models sit beside the Keras model they came from)."""
    candidate = Path(model_path).parent / TRAINING_RECORD
    return candidate if candidate.is_file() else None


def load_keras_model(path: Path, with_optimizer: bool = False) -> Any:
    """Load a .keras file (imports TensorFlow: callers are train/export commands only).

    For inference by default; `with_optimizer` also restores the optimizer saved with it, which is
    where a stopped training run keeps its schedule step and momentum (train --resume).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    import keras

    # Keras raises many types for a bad file (ValueError, OSError, zipfile errors, its own)
    with reraise_as(ModelError, f"{path}: cannot load Keras model", Exception):
        return keras.models.load_model(path, compile=with_optimizer)
