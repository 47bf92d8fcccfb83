"""On-device runtime: numpy, Pillow and one interpreter. Never imports TensorFlow, train/ or export/.

    from fmnist_edge.runtime import Classifier
    predictions = Classifier().classify(["shirt.jpg"])

The names below load lazily, so `import fmnist_edge.runtime.errors` (which the CLI does at start)
does not pay for numpy, Pillow and an interpreter. `preprocess` is not re-exported: the submodule of
that name would shadow it; use `from fmnist_edge.runtime.preprocess import preprocess`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Classifier": "fmnist_edge.runtime.classifier",
    "Prediction": "fmnist_edge.runtime.classifier",
    "CLASS_NAMES": "fmnist_edge.runtime.spec",
    "FmnistEdgeError": "fmnist_edge.runtime.errors",
    "ImageError": "fmnist_edge.runtime.errors",
    "ModelError": "fmnist_edge.runtime.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fmnist_edge.runtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
