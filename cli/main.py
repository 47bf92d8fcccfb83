"""The `fmnist-edge` entry point: the everyday `classify FILE...` starts without importing typer.

Typer and its click core cost about 40 ms of imports, a fifth of a whole `classify` on this
machine and more on a Pi. When `classify` gets only paths and no options there is nothing to
parse, so it runs directly; everything else (options, --help, the other commands) goes through
the typer app in app.py. Both routes run `classify_exit_code` (cli/classify.py), so their output
cannot differ. This module imports nothing of ours at the top, so nothing can import it back in a
cycle.
"""

from __future__ import annotations

import sys


def is_plain_classify(args: list[str]) -> bool:
    """`classify` followed by paths only: anything starting with '-' needs the real parser."""
    return len(args) >= 2 and args[0] == "classify" and not any(a.startswith("-") for a in args[1:])


def main() -> None:
    """The console script: the plain classify route, else the typer app."""
    args = sys.argv[1:]
    if args[:1] == ["classify"]:
        from fmnist_edge.interrupt import defer_signals

        defer_signals()  # Ctrl-C and SIGTERM end classify with 130 on both routes, even during start-up
    if is_plain_classify(args):
        from fmnist_edge.classify import classify_exit_code
        from fmnist_edge.exits import EXIT_INTERRUPTED

        try:
            sys.exit(classify_exit_code(args[1:]))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
    from fmnist_edge.app import app

    app(prog_name="fmnist-edge")
