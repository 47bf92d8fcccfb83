"""The `fmnist-edge` entry point: the everyday `classify FILE...` starts without importing typer.

Typer and its click core cost about 40 ms of imports, a fifth of a whole `classify` on this
machine and more on a Pi. When `classify` gets only paths and no options there is nothing to
parse, so it runs directly; everything else (options, --help, the other commands) goes through
the typer app in app.py. Both routes run `classify_exit_code`, so their output cannot differ.
"""

from __future__ import annotations

import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def classify_exit_code(paths: list[str], **options: Any) -> int:
    """Run classify (`options` are run_classify's); a model problem is a usage error (one line,
    exit 2), a bad input exit 1."""
    from fmnist_edge.runtime.classify import run_classify
    from fmnist_edge.runtime.errors import FmnistEdgeError

    try:
        failed = run_classify(paths, **options)
    except FmnistEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if failed else EXIT_OK


def is_plain_classify(args: list[str]) -> bool:
    """`classify` followed by paths only: anything starting with '-' needs the real parser."""
    return len(args) >= 2 and args[0] == "classify" and not any(a.startswith("-") for a in args[1:])


def main() -> None:
    args = sys.argv[1:]
    if is_plain_classify(args):
        try:
            sys.exit(classify_exit_code(args[1:]))
        except KeyboardInterrupt:
            print("\nAborted!", file=sys.stderr)  # what click prints on the parsed route
            sys.exit(EXIT_FAILED)
    from fmnist_edge.app import app

    app(prog_name="fmnist-edge")
