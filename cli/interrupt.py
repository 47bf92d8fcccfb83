"""Stop a long command cleanly on SIGINT (Ctrl-C) or SIGTERM (`kill`, systemd, a container stop).

Why: Python's default turns Ctrl-C into KeyboardInterrupt wherever the program happens to be,
and SIGTERM into instant death, so `classify` lost every answer it had not printed yet and
`export` left its staging files behind. Inside `StopOnSignals` the first signal only sets
`requested`; the command checks it between units of work (an input, a step), finishes the one in
hand and exits with EXIT_INTERRUPTED. A second signal means "now": a KeyboardInterrupt
(`Interrupted`) is raised at once, which the command also turns into EXIT_INTERRUPTED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)
EXIT_INTERRUPTED = 130  # = exits.EXIT_INTERRUPTED; not imported, so that main.py can use this module first thing
_early: str | None = None  # a signal that came while the program was still starting (see defer_signals)


def defer_signals() -> None:
    """From the first line of main(): a signal that comes while modules load is remembered, and
    StopOnSignals starts out with it, so Ctrl-C gives the same exit on every route (typer's would
    print "Aborted!" and exit 1). A second one during start-up ends the process at once."""

    def remember(signum: int, frame: FrameType | None) -> None:
        global _early
        if _early is not None:
            if sys.stderr is not None:  # None: stderr was closed when the program started
                print("interrupted", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)  # nothing has been written yet, so nothing is left half done
        _early = signal.Signals(signum).name

    for sig in SIGNALS:
        signal.signal(sig, remember)


class Interrupted(KeyboardInterrupt):
    """What a signal raises: caught by every `except KeyboardInterrupt`, but not of that exact type.

    Why: CPython (3.11 here) marks the process as ended by Ctrl-C when an exact KeyboardInterrupt
    leaves code run by `exec` of a string (dataclasses build their methods that way while a module
    imports). It then kills itself with SIGINT after `python -m fmnist_edge` has printed
    "interrupted" and asked for 130. The exit code becomes -2 instead. A signal that landed there
    did this in 5 of 80 SIGTERMs sent to `evaluate-photos` as it started, and a subclass in none of
    150."""


class StopOnSignals:
    """Context manager: while inside, SIGINT/SIGTERM set `requested` (the signal's name) instead
    of killing the process. Handlers can only be set from the main thread; elsewhere (a test
    runner's worker thread) it does nothing and the defaults stay."""

    def __init__(self, raise_at_once: bool = False) -> None:
        self.requested: str | None = _early
        self._raise_at_once = raise_at_once  # export: unwind now (its finally blocks clean up)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """Around a call that may wait without end (reading a pipe whose writer is slow or stuck):
        there, the first signal raises KeyboardInterrupt at once, as a second one would elsewhere."""
        before, self._raise_at_once = self._raise_at_once, True
        try:
            if self.requested is not None:  # it came just before: the wait would not be interrupted
                raise Interrupted
            yield
        finally:
            self._raise_at_once = before

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        already = self.requested is not None
        self.requested = signal.Signals(signum).name
        if already or self._raise_at_once:
            raise Interrupted
