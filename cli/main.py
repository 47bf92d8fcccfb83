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


def hold_closed_descriptors() -> None:
    """Put /dev/null on a standard descriptor (0, 1, 2) that was closed when the program started
    (`2>&-`). Why: the next file opened would take that number, and a native library's log line
    (LiteRT's go to descriptor 2) would land in it, in a photo or a report. Python has already made
    sys.stdout or sys.stderr None for a closed one, so our own lines still treat it as closed."""
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, or a lower closed one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main() -> None:
    """The console script: the plain classify route, else the typer app. Whatever the command, its
    output is flushed before exit, and a full disk, there or in a file no command named, is one line."""
    import errno

    survive_narrow_consoles()
    hold_closed_descriptors()
    try:
        _dispatch(sys.argv[1:])
    except OSError as exc:  # the last resort: every command names the files it writes itself
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        _fail(f"cannot write {exc.filename or 'the output'} ({exc.strerror})")  # no file name: a stream
    finally:
        _flush_stdout()


def _flush_stdout() -> None:
    """Flush what the command printed now, not in Python's exit, which answers a full disk with
    "Exception ignored" and exit 120: here it is one line and exit 2."""
    from fmnist_edge.output import flush_stdout
    from fmnist_edge.runtime.errors import UsageError

    try:
        flush_stdout()
    except UsageError as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    """One error line on stderr, then the exit code the table gives a UsageError."""
    from fmnist_edge.exits import exit_code
    from fmnist_edge.output import Lines
    from fmnist_edge.runtime.errors import UsageError

    Lines().err(f"error: {message}")
    sys.exit(exit_code(UsageError(message)))


def _dispatch(args: list[str]) -> None:
    """Run the command `args` name; raises SystemExit with its code."""
    if args[:1] in (["classify"], ["serve"]):
        from fmnist_edge.interrupt import defer_signals

        defer_signals()  # Ctrl-C and SIGTERM end classify and serve with 130, even during start-up
    if is_plain_classify(args):
        from fmnist_edge.classify import classify_exit_code
        from fmnist_edge.exits import EXIT_INTERRUPTED

        try:
            sys.exit(classify_exit_code(args[1:]))
        except KeyboardInterrupt:
            from fmnist_edge.output import Lines

            Lines().err("interrupted")
            sys.exit(EXIT_INTERRUPTED)
    from fmnist_edge.app import app

    app(prog_name="fmnist-edge")
