"""The errors only training and export raise; the whole hierarchy is drawn in runtime/errors.py,
whose base class these extend, and cli/exits.py gives each its exit code."""

from __future__ import annotations

from fmnist_edge.runtime.errors import FmnistEdgeError


class DataError(FmnistEdgeError):
    """Fashion-MNIST files missing, corrupt, truncated or not downloadable."""


class ExportError(FmnistEdgeError):
    """Export refused: existing files without --force, bad options, an unreadable training record."""


class ParityError(ExportError):
    """A converted model disagrees with its source beyond tolerance."""


class RecordError(FmnistEdgeError):
    """A training record that is missing, unreadable, of an unknown version, or has a wrong field."""
