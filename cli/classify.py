"""The work behind `fmnist-edge classify`: every input gets a result line or one error line.

Command-line code, not runtime: it expands what the user typed, prints rows or JSON Lines, and
turns errors into exit codes. The library it drives is `Classifier` (runtime/classifier.py).
Both routes into `classify` (cli/main.py's plain one and the typer app) call `classify_exit_code`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_edge.exits import EXIT_FAILED, EXIT_OK, exit_code
from fmnist_edge.inputs import Input, expand
from fmnist_edge.runtime.classifier import Classifier, Prediction
from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError, UsageError
from fmnist_edge.runtime.preprocess import preprocess


def classify_exit_code(paths: list[str], **options: Any) -> int:
    """Run classify (`options` are run_classify's) and return its exit code: an error that stops
    the whole run is one line on stderr and its code from the table; failed inputs make it 1."""
    try:
        failed = run_classify(paths, **options)
    except FmnistEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    return EXIT_FAILED if failed else EXIT_OK


def run_classify(
    paths: list[str],
    model: Path | None = None,
    backend: str | None = None,
    threads: int | None = None,
    top_k: int = 1,
    json_lines: bool = False,
    save_input: Path | None = None,
) -> int:
    """Classify and print; returns the number of inputs that failed. Model and --save-input errors raise."""
    if save_input is not None:
        _writable_folder(save_input)
    classifier = Classifier(model, threads=threads, backend=backend)
    inputs = expand(paths)
    prepared: list[tuple[Input, np.ndarray]] = []
    errors: dict[int, str] = {}
    for i, item in enumerate(inputs):
        if item.error is not None:
            errors[i] = item.error
            continue
        try:
            prepared.append((item, preprocess(item.path, name=item.shown)))
        except ImageError as exc:
            errors[i] = str(exc)
    if save_input is not None and prepared:
        _save_inputs(save_input, prepared)
    predictions = (
        classifier.to_predictions(classifier.predict(np.stack([p for _, p in prepared]))) if prepared else []
    )
    by_input = {id(item): pred for (item, _), pred in zip(prepared, predictions, strict=True)}

    if not json_lines:
        _print_header(top_k)
    for i, item in enumerate(inputs):
        if i in errors:
            if json_lines:
                print(json.dumps({"path": item.shown, "error": errors[i]}), flush=True)
            print(f"error: {errors[i]}", file=sys.stderr, flush=True)
            continue
        pred = by_input[id(item)]
        print(_json(item, pred, top_k) if json_lines else _row(item, pred, top_k))
    return len(errors)


def _json(item: Input, pred: Prediction, top_k: int) -> str:
    obj: dict[str, object] = {
        "path": item.shown,
        "index": pred.index,
        "label": pred.label,
        "confidence": round(pred.confidence, 4),
        "unsure": pred.unsure,
    }
    if top_k > 1:
        obj["top_k"] = [{"index": i, "label": lbl, "confidence": round(c, 4)} for i, lbl, c in pred.top_k(top_k)]
    return json.dumps(obj)


def _print_header(top_k: int) -> None:
    extra = "  next most likely" if top_k > 1 else ""
    print(f"{'label':<12} {'confidence':>10}  {'':6}  path{extra}")


def _row(item: Input, pred: Prediction, top_k: int) -> str:
    flag = "unsure" if pred.unsure else ""
    line = f"{pred.label:<12} {100 * pred.confidence:>9.1f}%  {flag:6}  {item.shown}"
    if top_k > 1:
        rest = ", ".join(f"{lbl} {100 * c:.1f}%" for _, lbl, c in pred.top_k(top_k)[1:])
        line += f"  ({rest})"
    return line


def _writable_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--save-input {directory}: cannot create the folder ({exc.strerror or exc})") from None


def _save_inputs(directory: Path, prepared: list[tuple[Input, np.ndarray]]) -> None:
    from PIL import Image

    used: set[str] = set()
    for item, pixels in prepared:
        name = f"{Path(item.shown).stem}.png"
        n = 1
        while name in used:
            n += 1
            name = f"{Path(item.shown).stem}-{n}.png"
        used.add(name)
        try:
            Image.fromarray(pixels, "L").save(directory / name)
        except OSError as exc:
            raise UsageError(f"--save-input {directory / name}: cannot write ({exc.strerror or exc})") from None
