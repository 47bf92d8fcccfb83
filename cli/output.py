"""Lines out of a long-running command, safely: any file name, any locale, a reader that goes away.

Why: `classify` prints names it did not choose. A file name is bytes on Linux; Python hands a
name that is not valid UTF-8 over with "surrogate escapes", which a UTF-8 stdout cannot encode
(the whole batch died with UnicodeEncodeError under Raspberry Pi OS's default locale), and a
name may hold a newline or a terminal escape, which would forge or garble lines. And
`classify DIR | head -3` closes the pipe after three lines: that is the reader's choice, not an
error worth a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TextIO

from fmnist_edge.runtime.errors import UsageError

# C0 and C1 control characters, DEL, and the two Unicode line breaks: shown as escapes, so one
# input is always one line and a name cannot move the cursor or recolour the terminal.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def safe_text(text: str) -> str:
    """`text` with every undecodable byte of a file name shown as \\xNN and every control character
    escaped; plain text is returned as it is (the fast path: one check per line)."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid in the filesystem encoding
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(_ESCAPES.get(code, ch))
    return "".join(out)


class Lines:
    """Writes whole lines to stdout and stderr. A closed stdout (a reader gone, or no stdout at all)
    sets `closed` (the caller stops work) and is silenced; stdout on a full disk is one UsageError
    (the caller prints it and exits 2); a closed or failing stderr only loses its own lines, never
    the answers on stdout. A character the stream's encoding lacks (an accented name on an ASCII
    terminal) is written as a backslash escape."""

    def __init__(self) -> None:
        self.closed = False

    def out(self, line: str) -> None:
        if self.closed:
            return
        try:
            self._write(sys.stdout, line)
        except OSError as exc:
            self.closed = True
            stdout_failed(exc)

    def err(self, line: str) -> None:
        try:
            self._write(sys.stderr, line)
            if sys.stderr is not None:
                sys.stderr.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say it: the warning is dropped, the answers go on

    def flush(self) -> None:
        if not self.closed:
            self.closed = True  # unless the flush succeeds: a full disk raises, a gone reader returns False
            self.closed = not flush_stdout()

    def _write(self, stream: TextIO | None, line: str) -> None:
        """Raises OSError (or BrokenPipeError) when the line cannot be written; ValueError, from a
        stream closed under us, and a missing stream (None: the descriptor was closed when Python
        started) are raised as a broken pipe, which they are to the reader."""
        if stream is None:
            raise BrokenPipeError(errno.EPIPE, "the stream is closed")
        text = safe_text(line) + "\n"
        try:
            try:
                stream.write(text)
            except UnicodeEncodeError:  # encoding happens before anything is written, so no half line
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except ValueError:
            raise BrokenPipeError(errno.EPIPE, "the stream was closed") from None


def flush_stdout() -> bool:
    """Flush stdout at the end of a batch or a command; False when it has no reader any more (and is
    silenced); a full disk is a UsageError. Called before Python's own flush at exit, which would
    print "Exception ignored" and exit 120 instead."""
    if sys.stdout is None:
        return False
    try:
        sys.stdout.flush()
    except ValueError:
        return False  # closed under us: nothing left to flush
    except OSError as exc:
        stdout_failed(exc)
        return False
    return True


def stdout_failed(exc: OSError) -> None:
    """stdout could not be written: silence it, so the lines still buffered are not retried at exit;
    a reader that has gone (EPIPE; EINVAL on some platforms) ends quietly, anything else (a full disk,
    an I/O error) raises a UsageError naming it."""
    _silence(sys.stdout)
    if exc.errno in (errno.EPIPE, errno.EINVAL):
        return
    raise UsageError(f"cannot write to standard output ({exc.strerror or exc})") from None


def _silence(stream: TextIO | None) -> None:
    """Point the stream's file descriptor at /dev/null, so that Python's final flush at exit does not
    print "Exception ignored ... BrokenPipeError" for the lines still buffered."""
    if stream is None:
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer): nothing will flush it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)

