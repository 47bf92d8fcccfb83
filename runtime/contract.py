"""The model contract, checked at load for every backend and on every batch of scores.

Why: an interpreter happily opens a model of another shape, and what goes wrong later is far from
the cause. A [N, 1, 10] or [N, 28, 10] output passes a "last axis is 10" test and then answers
nonsense or crashes; a second input would be left unset (zeros) and the model answers anyway,
with full confidence; a NaN score turns into `"confidence": NaN` (not even JSON). So every backend
describes its model's tensors to `check_io` before it is used, and passes each batch of scores
through `check_scores`. Both raise ModelError (exit 2): the model, not the image, is at fault.

The contract itself is spec.py's: one input [N, 28, 28, 1] of raw pixels, one output [N, 10].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.spec import INPUT_DTYPES, INPUT_SHAPE, NUM_CLASSES, OUTPUT_DTYPES

Dim = int | str | None  # a fixed size, or a symbolic/unknown one (-1, "N", None)
Tensors = Sequence[tuple[Sequence[Dim], str]]  # (shape, numpy dtype name) of each input or output


def is_batch_dim(dim: Dim) -> bool:
    """The leading axis may be any size: fixed, -1, None or a symbolic name."""
    return not isinstance(dim, (int, np.integer)) or int(dim) == -1 or int(dim) >= 1


def _fixed(dims: Sequence[Dim]) -> list[int | None]:
    return [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None for d in dims]


def check_io(path: Path, inputs: Tensors, outputs: Tensors) -> None:
    """Refuse a model unless it has exactly one input [N, 28, 28, 1] of a contract dtype and exactly
    one output [N, 10] of a contract dtype. `inputs`/`outputs` are (shape, numpy dtype name) pairs."""
    name = Path(path)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{name}: model has {len(inputs)} inputs and {len(outputs)} outputs; expected one each")
    (in_shape, in_dtype), (out_shape, out_dtype) = inputs[0], outputs[0]
    in_shape, out_shape = list(in_shape), list(out_shape)
    if len(in_shape) != 4 or not is_batch_dim(in_shape[0]) or _fixed(in_shape[1:]) != list(INPUT_SHAPE):
        raise ModelError(f"{name}: model input shape {in_shape} is not [N, 28, 28, 1]")
    if in_dtype not in INPUT_DTYPES:
        raise ModelError(f"{name}: model input type {in_dtype} is not one of {', '.join(INPUT_DTYPES)}")
    if len(out_shape) != 2 or not is_batch_dim(out_shape[0]) or _fixed(out_shape[1:]) != [NUM_CLASSES]:
        raise ModelError(f"{name}: model output shape {out_shape} is not [N, {NUM_CLASSES}]")
    if out_dtype not in OUTPUT_DTYPES:
        raise ModelError(f"{name}: model output type {out_dtype} is not one of {', '.join(OUTPUT_DTYPES)}")


def check_scores(path: Path, scores: np.ndarray, n: int) -> np.ndarray:
    """The scores of a batch of `n` images must be [n, 10]: a model that declared [N, 10] but
    returns another shape is refused here rather than misread. Non-finite values pass: they are an
    error of the one input that produced them (see `finite_rows`), not of the whole batch."""
    scores = np.asarray(scores)
    if scores.shape != (n, NUM_CLASSES):
        raise ModelError(f"{Path(path).name}: the model returned scores of shape {list(scores.shape)} "
                         f"for {n} images; expected [{n}, {NUM_CLASSES}]")
    return scores


def finite_rows(values: np.ndarray) -> np.ndarray:
    """True for each row of scores or probabilities that is all finite; a NaN or inf is never an answer."""
    return np.isfinite(values).all(axis=1)


NON_FINITE = "the model gave non-finite scores (NaN or inf) for this input; it is not an answer"
