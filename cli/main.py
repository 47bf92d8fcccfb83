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


# What our own lines print beyond ASCII, spelt for a console that cannot show it. Windows pipes and
# redirected output use the ANSI code page (cp1252 and others), which lacks "Δ" and "≥"; a
# UnicodeEncodeError there would lose the answer over a symbol. Anything else (a photo's file name
# in another script, say) is written as a Python escape, which still names the file.
SPELLINGS = {"Δ": "delta", "≥": ">=", "≤": "<=", "→": "->", "×": "x", "—": "-", "…": "...", "±": "+/-", "µ": "u"}
ERROR_HANDLER = "fmnist-edge-spell"


def _spell(error: UnicodeError) -> tuple[str, int]:
    """codecs error handler: the unencodable run as SPELLINGS gives it, else backslash escapes."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(SPELLINGS.get(c, c.encode("ascii", "backslashreplace").decode()) for c in text), error.end


def survive_narrow_consoles() -> None:
    """Let stdout and stderr print every line on any encoding, by spelling out what they cannot show.
    A UTF-8 stream is left alone (and pays nothing but this check): Linux, macOS, Windows' own console."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            try:
                codecs.lookup_error(ERROR_HANDLER)
            except LookupError:
                codecs.register_error(ERROR_HANDLER, _spell)
            stream.reconfigure(errors=ERROR_HANDLER)


def main() -> None:
    """The console script: the plain classify route, else the typer app."""
    survive_narrow_consoles()
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
