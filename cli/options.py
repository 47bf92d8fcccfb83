"""What the commands share: option types, the one-line failure, optional-dependency checks.

Kept apart from the commands so that each command module imports only this, never app.py: the
app imports the commands to register them, and nothing imports the app back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import exit_code
from fmnist_edge.output import safe_text
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.errors import FmnistEdgeError, MissingExtraError

Verbose = Annotated[
    bool, typer.Option("--verbose", help="Show TensorFlow's own start-up and log lines (hidden by default).")
]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with the four Fashion-MNIST .gz files.",
                 show_default="$FMNIST_EDGE_DATA, the user cache, /usr/share/datasets/fashion-mnist, download"),
]

Threads = Annotated[
    int | None,
    typer.Option(min=1, max=registry.MAX_THREADS, help=f"Interpreter threads, 1 to {registry.MAX_THREADS}.",
                 show_default="all cores"),
]

BACKEND_HELP = (f"{registry.choices()}: auto takes the first installed in that order, with the bundled model it "
                "runs (onnxruntime the int8 ONNX, numpy the float TFLite).")


def fail(error: FmnistEdgeError, prefix: str = "error: ") -> typer.Exit:
    """Print `error` as one line on stderr, escaped as classify escapes its lines (a path the user
    chose may hold a newline or a terminal escape); the exit to raise carries its code from the one table."""
    typer.echo(safe_text(f"{prefix}{error}"), err=True)
    return typer.Exit(exit_code(error))


def require(module: str, package: str, extra: str) -> None:
    """Fail with the pip command to run when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(package, extra)


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout stays one table or one JSON document."""
    typer.echo(safe_text(message), err=True)
