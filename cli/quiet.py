"""Keep TensorFlow's C++ start-up lines out of `train`, `export` and `evaluate` unless --verbose.

Importing TensorFlow prints lines such as "oneDNN custom operations are on", "Could not find cuda
drivers" and "All log messages before absl::InitializeLog() is called are written to STDERR", and
the first model call adds a CUDA error on a machine without a GPU. None of them is about the
user's command, and they bury its one-line errors. Two layers, because neither is enough alone:

1. TF_CPP_MIN_LOG_LEVEL=3 before TensorFlow is imported (only commands import it), and absl's
   Python logger at ERROR: this silences TensorFlow's own logging once absl is initialised.
2. The lines written before that initialisation ignore every setting (measured with TensorFlow
   2.21), so the process's native stderr (file descriptor 2) goes to /dev/null while the command
   runs, and Python's `sys.stderr` (our error lines, tracebacks, warnings) is moved to a copy of the
   real one. A user who sets TF_CPP_MIN_LOG_LEVEL keeps their value.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

Command = TypeVar("Command", bound=Callable[..., Any])


@contextlib.contextmanager
def tensorflow_logs(verbose: bool) -> Iterator[None]:
    """Around a command that may import TensorFlow: quiet unless `verbose`."""
    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _absl_errors_only()
    try:
        python_uses_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test runner's captured stream: not the real fd 2
        python_uses_fd2 = False
    sys.stderr.flush()
    saved = os.dup(2)
    old_stderr = sys.stderr
    if python_uses_fd2:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=old_stderr.encoding,
                               errors="backslashreplace")
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        # The copy stays open: a logging handler made during the command may still hold it.
        sys.stderr = old_stderr


def quiet_unless_verbose(command: Command) -> Command:
    """Run a command (which has a `verbose` parameter) inside `tensorflow_logs`; typer still sees
    the command's own signature through functools.wraps."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with tensorflow_logs(bool(kwargs.get("verbose", False))):
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]


def _absl_errors_only() -> None:
    try:
        from absl import logging as absl_logging  # installed with TensorFlow; cheap on its own
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
