"""Every error a user can cause, in one hierarchy. The CLI maps them to one line and an exit code
(the table is `cli/exits.py`; the exit code of each class is shown on the right). The four
that only training and export raise live in common/errors.py, so the runtime does not carry them.

    FmnistEdgeError            base: message is a complete sentence meant for the user        2
    ├── DataError (common)     Fashion-MNIST files missing, corrupt, truncated or not downloadable  1
    ├── ModelError             model file missing, corrupt, unexpected shape, hash mismatch   2
    ├── GoldenError            the selftest's golden data is corrupt or replaced              1
    │   └── MissingGoldenError the golden data is not installed (not a failed test)           2
    ├── ImageError             an input image cannot be read or is unusable                   1
    │   └── NotAnImageError    the bytes are no image format Pillow reads (serve: 415)       1
    ├── UsageError             an option's value cannot be honoured (say, an unwritable folder)  2
    ├── ExportError (common)   export refused (existing files, bad options)                   2
    │   └── ParityError (common) a converted model disagrees with its source beyond tolerance   1
    ├── RecordError (common)   a training record unreadable, of another version, or with a wrong field  2
    └── MissingExtraError      an optional dependency is not installed; names the pip command 2
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class FmnistEdgeError(Exception):
    """Base class: str(error) is the one line the CLI prints."""


class ModelError(FmnistEdgeError):
    pass


class GoldenError(FmnistEdgeError):
    pass


class MissingGoldenError(GoldenError):
    pass


class UsageError(FmnistEdgeError):
    pass


class ImageError(FmnistEdgeError):
    pass


class NotAnImageError(ImageError):
    """No image format at all, rather than a broken or unusable image: `serve` answers 415, not 422."""


class MissingExtraError(FmnistEdgeError):
    """Names the pip command: an extra of ours when there is one, else the package itself."""

    def __init__(self, package: str, extra: str | None, alternatives: str = "") -> None:
        install = f'pip install "fmnist-edge[{extra}]"' if extra else f"pip install {package}"
        super().__init__(f"{package} is not installed; this command needs it: {install}{alternatives}")
        self.package = package


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a foreign exception's message, else its class name.

    Other libraries' messages run to many lines (stack dumps, C++ context); ours are one line,
    and an empty message must still say something rather than fail while we report the error.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


@contextlib.contextmanager
def reraise_as(
    error: type[FmnistEdgeError], what: str, *foreign: type[BaseException]
) -> Iterator[None]:
    """Turn the `foreign` exceptions a library raises inside the block into `error`:
    "<what> (<their first line>)", without their traceback (the message is the whole story)."""
    try:
        yield
    except foreign as exc:
        raise error(f"{what} ({first_line(exc)})") from None
