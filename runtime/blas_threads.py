"""Limit numpy's BLAS thread pool for the length of one call, without threadpoolctl.

Why: the numpy backend's time is matrix products, which OpenBLAS spreads over every core. `bench`
times each backend at 1 thread and at all cores, and `--threads` must mean the same thing for
every backend, so the numpy backend sets the pool size around each `run` and restores it after.
numpy's wheels link OpenBLAS (symbols prefixed `scipy_` since numpy 2, suffixed `64_` in the
64-bit-integer builds); Debian's numpy may link OpenBLAS or the reference BLAS. Where no OpenBLAS
is found (the reference BLAS is single-threaded anyway; Accelerate on macOS cannot be set), the
call runs unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator
from functools import cache

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "_64_", "")


@cache
def _openblas() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS numpy loaded, or None."""
    import numpy  # noqa: F401  (loads the BLAS library, so it shows in the process's maps)

    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


def _loaded_libraries() -> list[str]:
    """Shared libraries in this process whose name says BLAS (Linux: /proc/self/maps)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Run the body with at most `threads` BLAS threads (None: leave the pool as it is)."""
    funcs = _openblas() if threads else None
    if funcs is None:
        yield
        return
    setter, getter = funcs
    before = getter()
    if before == threads:
        yield
        return
    setter(threads)
    try:
        yield
    finally:
        setter(before)
