"""Every error a user can cause, in one hierarchy. The CLI maps them to one line and an exit code.

    FmnistEdgeError            base: message is a complete sentence meant for the user
    ├── DataError              Fashion-MNIST files missing, corrupt, truncated or not downloadable
    ├── ModelError             model file missing, corrupt, unexpected shape, hash mismatch
    │   └── MissingGoldenError the selftest's golden data is not installed (exit 2, not a failed test)
    ├── ImageError             an input image cannot be read or is unusable
    ├── ExportError            export refused (existing files, failed parity, bad options)
    │   └── ParityError        a converted model disagrees with its source beyond tolerance
    └── MissingExtraError      an optional dependency is not installed; names the pip command
"""

from __future__ import annotations


class FmnistEdgeError(Exception):
    """Base class: str(error) is the one line the CLI prints."""


class DataError(FmnistEdgeError):
    pass


class ModelError(FmnistEdgeError):
    pass


class MissingGoldenError(ModelError):
    pass


class ImageError(FmnistEdgeError):
    pass


class ExportError(FmnistEdgeError):
    pass


class ParityError(ExportError):
    pass


class MissingExtraError(FmnistEdgeError):
    """Names the pip command: an extra of ours when there is one, else the package itself."""

    def __init__(self, package: str, extra: str | None, alternatives: str = "") -> None:
        install = f'pip install "fmnist-edge[{extra}]"' if extra else f"pip install {package}"
        super().__init__(f"{package} is not installed; this command needs it: {install}{alternatives}")
        self.package = package
