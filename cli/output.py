"""Lines out of a long-running command, safely: any file name, any locale, a reader that goes away.

Why: `classify` prints names it did not choose. A file name is bytes on Linux; Python hands a
name that is not valid UTF-8 over with "surrogate escapes", which a UTF-8 stdout cannot encode
(the whole batch died with UnicodeEncodeError under Raspberry Pi OS's default locale), and a
name may hold a newline or a terminal escape, which would forge or garble lines. And
`classify DIR | head -3` closes the pipe after three lines: that is the reader's choice, not an
error worth a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

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
    """Writes whole lines to stdout and stderr. A closed stdout sets `closed` (the caller stops
    work) and is silenced; a closed stderr is ignored. A character the stream's encoding lacks
    (an accented name on an ASCII terminal) is written as a backslash escape."""

    def __init__(self) -> None:
        self.closed = False

    def out(self, line: str) -> None:
        if not self.closed and not self._write(sys.stdout, line):
            self.closed = True
            _silence(sys.stdout)

    def err(self, line: str) -> None:
        self._write(sys.stderr, line)

    def flush(self) -> None:
        if not self.closed:
            try:
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                self.closed = True
                _silence(sys.stdout)

    def _write(self, stream: TextIO, line: str) -> bool:
        """False when the reader has gone (broken pipe, closed stream)."""
        text = safe_text(line) + "\n"
        try:
            try:
                stream.write(text)
            except UnicodeEncodeError:  # encoding happens before anything is written, so no half line
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            if stream is sys.stderr:
                stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed under us
            return False
        except OSError as exc:
            if exc.errno not in (32, 22):  # EPIPE; EINVAL on some platforms for a closed pipe
                raise
            return False
        return True


def _silence(stream: TextIO) -> None:
    """Point the stream's file descriptor at /dev/null, so that Python's final flush at exit does not
    print "Exception ignored ... BrokenPipeError" for the lines still buffered."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer): nothing will flush it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)

