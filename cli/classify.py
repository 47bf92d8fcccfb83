"""The work behind `fmnist-edge classify`: every input gets a result line or one error line, as it
is done, and nothing that happens to one input stops the others.

Command-line code, not runtime: it expands what the user typed, prints rows or JSON Lines, and
turns errors into exit codes. The library it drives is `Classifier` (runtime/classifier.py).
Both routes into `classify` (cli/main.py's plain one and the typer app) call `classify_exit_code`.

Streaming: inputs are decoded one by one and sent to the interpreter in batches (BATCH images,
or whatever is ready after FLUSH_SECONDS), and each batch's lines are printed and flushed at once.
Batching keeps the interpreter's throughput on folders of small images; the deadline keeps the
first line of a slow batch (big photos) from waiting for the rest. Lines keep the input order.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_edge.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code
from fmnist_edge.inputs import Input, expand
from fmnist_edge.interrupt import StopOnSignals
from fmnist_edge.output import Lines
from fmnist_edge.runtime.classifier import Classifier, Prediction
from fmnist_edge.runtime.contract import NON_FINITE, finite_rows
from fmnist_edge.runtime.errors import FmnistEdgeError, ImageError, first_line
from fmnist_edge.runtime.preprocess import preprocess
from fmnist_edge.runtime.spec import NUM_CLASSES
from fmnist_edge.save_input import InputSaver
from fmnist_edge.walk import WalkStopped

BATCH = 64  # images per interpreter call (each with its mirror image): as fast per image as larger batches
FLUSH_SECONDS = 0.05  # a decoded input waits at most this long for its batch to fill


@dataclass
class Outcome:
    failed: int = 0  # inputs that got an error line
    stopped: str | None = None  # why the run ended early: a signal's name, or "stdout closed"


def classify_exit_code(paths: list[str], **options: Any) -> int:
    """Run classify (`options` are run_classify's) and return its exit code: an error that stops
    the whole run is one line on stderr and its code from the table; failed inputs make it 1; a
    signal or a closed stdout, EXIT_INTERRUPTED."""
    lines = Lines()
    try:
        with StopOnSignals() as stop:
            outcome = run_classify(paths, lines=lines, stop=stop, **options)
    except FmnistEdgeError as exc:
        lines.err(f"error: {exc}")
        return exit_code(exc)
    except KeyboardInterrupt:  # a second signal, or one that came before the handlers were set
        lines.err("interrupted")
        return EXIT_INTERRUPTED
    if outcome.stopped is not None:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def run_classify(
    paths: list[str],
    model: Path | None = None,
    backend: str | None = None,
    threads: int | None = None,
    top_k: int = 1,
    json_lines: bool = False,
    save_input: Path | None = None,
    lines: Lines | None = None,
    stop: StopOnSignals | None = None,
) -> Outcome:
    """Classify and print as each batch is done. Model and --save-input errors raise before any
    input is read; an input's own failure, whatever raised it, is one error line."""
    lines = lines or Lines()
    saver = InputSaver(save_input) if save_input is not None else None
    classifier = Classifier(model, threads=threads, backend=backend)
    if not classifier.verified:
        lines.err(unverified_warning(classifier.path))
    try:
        inputs = expand(paths, stopped=lambda: stop is not None and stop.requested is not None)
    except WalkStopped:
        lines.err(f"interrupted ({stop.requested}): stopped while listing the inputs")
        return Outcome(stopped=stop.requested)
    if saver is not None:
        saver.refuse_folders_of(inputs)
        saver.create()
    printer = _Printer(classifier, lines, top_k, json_lines, saver)
    if not json_lines:
        printer.header()
    outcome = Outcome()
    pending: list[tuple[Input, np.ndarray | None, str | None]] = []
    started = 0.0
    for done, item in enumerate(inputs):
        if stop is not None and stop.requested:
            lines.err(f"interrupted ({stop.requested}): stopped after {done} of {len(inputs)} inputs")
            outcome.stopped = stop.requested
            break
        if lines.closed:
            outcome.stopped = "stdout closed"
            break
        if item.stream:  # a pipe may wait for its writer: the answers so far go out first, and a signal ends the wait
            outcome.failed += printer.flush(pending)
            pending = []
            with stop.at_once() if stop is not None else contextlib.nullcontext():
                pixels, error = _prepare(item)
        else:
            pixels, error = _prepare(item)
        if not pending:
            started = time.monotonic()
        pending.append((item, pixels, error))
        ready = sum(p is not None for _, p, _ in pending)
        if ready == 0 or ready >= BATCH or time.monotonic() - started >= FLUSH_SECONDS:
            outcome.failed += printer.flush(pending)
            pending = []
    outcome.failed += printer.flush(pending)  # what was decoded before a stop is still answered
    if lines.closed and outcome.stopped is None:
        outcome.stopped = "stdout closed"
    return outcome


def unverified_warning(model: Path) -> str:
    """The one line every command that runs a model with no manifest beside it prints first."""
    return (f"warning: {model}: no manifest beside it, so an unverified model (its SHA-256 is not checked) "
            "with no calibrated threshold (no answer is flagged unsure)")


def _prepare(item: Input) -> tuple[np.ndarray | None, str | None]:
    """The 28x28 model input, or the one-line reason there is none. The per-input boundary: any
    exception from a decoder, a plugin, EXIF or memory is caught here, whatever its class."""
    if item.error is not None:
        return None, item.error
    if item.stdin and sys.stdin is None:
        return None, f"{item.shown}: there is no standard input (it is closed)"
    try:
        return preprocess(sys.stdin.buffer if item.stdin else item.path, name=item.shown), None
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # a decoder bug or MemoryError: this input fails, the batch goes on
        return None, f"{item.shown}: cannot read the image ({type(exc).__name__}: {first_line(exc)})"


def rounded(confidence: float) -> float:
    """The confidence every surface shows: --json and serve's answers carry it, and the table and the web
    page print it as a percentage, so one answer never reads 93.2% in one place and 93.3% in another."""
    return round(confidence, 4)


def answer_object(shown: str, pred: Prediction, top_k: int = 1) -> dict[str, object]:
    """The JSON object `classify --json` prints for one answered input; `serve` answers with it too,
    so the two cannot drift apart."""
    obj: dict[str, object] = {
        "path": shown,
        "index": pred.index,
        "label": pred.label,
        "confidence": rounded(pred.confidence),
        "unsure": pred.unsure,
    }
    if top_k > 1:
        obj["top_k"] = [{"index": i, "label": lbl, "confidence": rounded(c)} for i, lbl, c in pred.top_k(top_k)]
    return obj


class _Printer:
    """Runs the model on a batch of prepared inputs and prints their lines in input order."""

    def __init__(self, classifier: Classifier, lines: Lines, top_k: int, json_lines: bool,
                 saver: InputSaver | None) -> None:
        self.classifier, self.lines, self.top_k, self.json_lines, self.saver = (
            classifier, lines, top_k, json_lines, saver)

    def header(self) -> None:
        extra = "  next most likely" if self.top_k > 1 else ""
        self.lines.out(f"{'label':<12} {'confidence':>10}  {'':6}  path{extra}")

    def flush(self, pending: list[tuple[Input, np.ndarray | None, str | None]]) -> int:
        """Print every pending input's line; returns how many failed."""
        if not pending:
            return 0
        ready = [p for _, p, _ in pending if p is not None]
        probabilities = self.classifier.predict(np.stack(ready)) if ready else np.zeros((0, NUM_CLASSES))
        finite = finite_rows(probabilities)
        failed, k = 0, 0
        for item, pixels, error in pending:
            answered = False
            if pixels is not None:
                probs, ok = probabilities[k], finite[k]
                k += 1
                if not ok:
                    error = f"{item.shown}: {NON_FINITE}"
                else:
                    (pred,) = self.classifier.to_predictions(probs[None])
                    self.lines.out(self._json(item, pred) if self.json_lines else self._row(item, pred))
                    answered = True
                    if self.saver is not None:
                        error = self.saver.save(item, pixels)
            if error is not None:
                failed += 1
                if self.json_lines and not answered:  # one JSON object per input
                    self.lines.out(json.dumps({"path": item.shown, "error": error}))
                self.lines.err(f"error: {error}")
        self.lines.flush()
        return failed

    def _json(self, item: Input, pred: Prediction) -> str:
        return json.dumps(answer_object(item.shown, pred, self.top_k))

    def _row(self, item: Input, pred: Prediction) -> str:
        flag = "unsure" if pred.unsure else ""
        line = f"{pred.label:<12} {100 * rounded(pred.confidence):>9.1f}%  {flag:6}  {item.shown}"
        if self.top_k > 1:
            rest = ", ".join(f"{lbl} {100 * rounded(c):.1f}%" for _, lbl, c in pred.top_k(self.top_k)[1:])
            line += f"  ({rest})"
        return line
