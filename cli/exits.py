"""Exit codes: the one table from error class to exit code, read by every command.

    0  done
    1  the command ran and something failed: the Fashion-MNIST files, an input image, a parity
       check, a selftest check, the golden data
    2  the command cannot run as asked: a bad option, a model, manifest or training record that
       is missing or unusable, no golden data installed, a missing optional package, a file it
       would replace without --force, an output folder that is locked by another run,
       unwritable or full
  130  stopped early by Ctrl-C or SIGTERM (or, for classify, a closed stdout): not an error
       class, so not in the table; the commands that stop cleanly return it themselves

2 is also what click exits with for an option it cannot parse, so "the request was wrong" has one
code whether typer or our code finds the problem. An error class not listed takes the code of its
nearest listed base class; FmnistEdgeError itself is a request this install cannot honour (2).

This module imports only the error classes: `cli/main.py` reads it on the fast `classify` route.
"""

from __future__ import annotations

from fmnist_edge.common.errors import DataError, ExportError, ParityError, RecordError
from fmnist_edge.runtime.errors import (
    FmnistEdgeError,
    GoldenError,
    ImageError,
    MissingExtraError,
    MissingGoldenError,
    ModelError,
    NotAnImageError,
    UsageError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C (128 + SIGINT) where a command stops part-way

EXIT_CODES: dict[type[FmnistEdgeError], int] = {
    FmnistEdgeError: EXIT_USAGE,
    DataError: EXIT_FAILED,
    ModelError: EXIT_USAGE,
    GoldenError: EXIT_FAILED,
    MissingGoldenError: EXIT_USAGE,
    ImageError: EXIT_FAILED,
    NotAnImageError: EXIT_FAILED,
    UsageError: EXIT_USAGE,
    ExportError: EXIT_USAGE,
    ParityError: EXIT_FAILED,
    RecordError: EXIT_USAGE,
    MissingExtraError: EXIT_USAGE,
}

def exit_code(error: FmnistEdgeError) -> int:
    """The code for `error`: its own class's row, else its nearest listed base class's."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_FAILED  # not one of ours: unreachable for FmnistEdgeError subclasses
