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
        model = keras.models.load_model(path, compile=with_optimizer)
    return model if with_optimizer else in_precision(model, "float32")


# The layers a bfloat16 run computes in bfloat16. The normalization, the pooling to features, dropout and
# the classifier stay float32: the logits and the loss keep their precision, as Keras' guide advises.
BF16_LAYERS = ("Conv2D", "BatchNormalization", "ReLU", "Add", "MaxPooling2D")


def in_precision(model: Any, precision: str) -> Any:
    """`model` with its conv stack computing in `precision` ("float32" or "bfloat16"): the same weights
    (float32 variables either way), rebuilt only when its layers compute in something else. So a model a
    bfloat16 run saved, even mid-run, exports and evaluates as the float32 network it is."""
    import keras

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    if all(layer.dtype_policy.name == policy for layer in model.layers if type(layer).__name__ in BF16_LAYERS):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        layer["config"]["dtype"] = policy if layer["class_name"] in BF16_LAYERS else "float32"
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
