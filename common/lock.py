"""An exclusive lock on a folder, for `export --out` and `train --out`: a second run into the same
folder refuses instead of interleaving (two trainings into one folder once left one run's record
beside the other's model, both exiting 0).

Why a kernel lock (flock on POSIX, msvcrt.locking on Windows) on a lock file rather than "create
the file if absent": the kernel drops the lock when its process dies, however it dies, so a
SIGKILLed export never leaves a lock that blocks the next one and needs a human to delete it.
The lock file itself stays (an empty, hidden file); only the lock on it matters.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from fmnist_edge.common.errors import ExportError

LOCK_FILE = ".fmnist-edge.lock"


class FolderLock:
    """`with FolderLock(folder, "export"):` holds the folder's lock or raises ExportError at once (never
    waits); `holder` names what is running, for the message a second run prints."""

    def __init__(self, folder: Path, holder: str = "export") -> None:
        self.path = Path(folder) / LOCK_FILE
        self.holder = holder
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ExportError(f"--out {self.path.parent}: cannot write there ({exc.strerror or exc})") from None
        try:
            _lock(fd)
        except BlockingIOError:
            os.close(fd)
            raise ExportError(f"--out {self.path.parent}: another {self.holder} is writing there; wait for it "
                              "to finish or choose another --out (two runs in one folder would mix their files)"
                              ) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _lock(fd: int) -> None:
    """Take an exclusive, non-blocking lock; BlockingIOError when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
