"""Facts about the machine the runtime is on: CPU, memory, versions, and which interpreters import.

`bench` records these with its figures (a latency means little without the CPU it was measured
on) and `doctor` prints them. Everything here is read-only and cheap, except `probe`, which
really imports each interpreter: finding the package is not enough, as tflite-runtime built for
numpy 1.x is found on a numpy 2 install and then fails on import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from fmnist_edge.runtime import registry
from fmnist_edge.runtime.backends import cores
from fmnist_edge.runtime.errors import first_line


@dataclass(frozen=True)
class Interpreter:
    backend: str  # litert | tflite-runtime | onnxruntime
    module: str
    version: str | None  # installed distribution version, None when not installed
    error: str | None  # None when it imports; otherwise the one-line reason

    @property
    def usable(self) -> bool:
        return self.error is None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe(backend: str) -> Interpreter:
    """Import the interpreter module `backend` needs and say whether that worked, and if not why."""
    row = registry.row(backend)
    version = package_version(row.package)
    top = row.module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        return Interpreter(backend, row.module, version, f"not installed ({row.install})")
    try:
        importlib.import_module(row.module)
    except Exception as exc:  # a broken binary wheel raises ImportError, AttributeError, RuntimeError...
        return Interpreter(backend, row.module, version, f"{type(exc).__name__}: {first_line(exc)}")
    return Interpreter(backend, row.module, version, None)


def probe_all() -> list[Interpreter]:
    """Every backend in the registry, in its priority order."""
    return [probe(name) for name in registry.NAMES]


def cpuinfo() -> str | None:
    """/proc/cpuinfo's text, or None where there is none (macOS, Windows) or it cannot be read."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


# The CPU features that decide whether int8 kernels beat fp32: dot-product instructions that
# multiply and add four 8-bit pairs at once. Without them (x86 before VNNI, ARMv8.0 like the Pi 4's
# Cortex-A72) an int8 model is mostly smaller, not faster. cpuinfo flag -> the name people know.
INT8_FEATURES = {
    "avx512_vnni": "AVX-512 VNNI",  # x86 `flags`
    "avx_vnni": "AVX-VNNI",
    "asimddp": "dotprod",  # ARM `Features` (the Pi 5's Cortex-A76 has it)
    "i8mm": "i8mm",
}


def int8_features(cpuinfo: str | None) -> list[str] | None:
    """The int8 dot-product features `cpuinfo` (the text of /proc/cpuinfo) lists, in INT8_FEATURES'
    order; [] when it lists none, None when there is no cpuinfo to read (then nobody knows)."""
    if cpuinfo is None:
        return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return [name for flag, name in INT8_FEATURES.items() if flag in flags]


def int8_summary(features: list[str] | None) -> str:
    """One line for doctor and bench: which int8 dot-product features this CPU has."""
    if features is None:
        return "unknown (no /proc/cpuinfo to read)"
    if not features:
        return "none of " + ", ".join(INT8_FEATURES.values()) + ": int8 models gain size here, little speed"
    return ", ".join(features)


def cpu_model() -> str:
    """The CPU's marketing name: x86 says `model name`, a Raspberry Pi says `Model` (the board)."""
    text = cpuinfo() or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def memory_mb() -> tuple[float | None, float | None]:
    """(total, available) MB: /proc/meminfo where present, else total from sysconf and no figure for available."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = float(value.split()[0]) / 1024  # kB -> MB
        return fields.get("MemTotal"), fields.get("MemAvailable")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, None
    except (ValueError, OSError, AttributeError):
        return None, None


def pointer_bits() -> int:
    """32 or 64: the Python build's word size. On a 64-bit Pi kernel with a 32-bit OS, platform.machine()
    says aarch64 while only armv7l wheels can load, so the machine name alone misleads."""
    return struct.calcsize("P") * 8


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process image so far, in MiB; None where it cannot be read.

    Linux: VmHWM from /proc/self/status, because ru_maxrss survives exec and so reports the parent's
    peak in a child started from a big process (a test runner holding TensorFlow, say). Other POSIX
    systems: ru_maxrss (KiB, bytes on macOS). Windows has no `resource` module: the peak working set
    from psapi instead. The POSIX module is imported here, never at module level, so that the
    runtime imports on every platform (tests/test_platforms.py runs it with `resource` blocked).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return _windows_peak_mb() if sys.platform == "win32" else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _windows_peak_mb() -> float | None:
    """PeakWorkingSetSize from GetProcessMemoryInfo (Windows' peak RSS); None if the call fails.
    Judged from the Win32 documentation, not run here: any failure gives None, never an error."""
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                    *((name, ctypes.c_size_t) for name in (
                        "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage", "QuotaPagedPoolUsage",
                        "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage"))]

    try:
        kernel32, psapi = ctypes.WinDLL("kernel32"), ctypes.WinDLL("psapi")  # type: ignore[attr-defined]
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        psapi.GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.POINTER(Counters), wintypes.DWORD]
        counters = Counters()
        counters.cb = ctypes.sizeof(Counters)
        if not psapi.GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
            return None
    except (OSError, AttributeError):
        return None
    return counters.PeakWorkingSetSize / 2**20


def summary() -> dict[str, object]:
    """The machine as plain data, for `bench --json`."""
    import numpy

    total, _ = memory_mb()
    return {
        "cpu": cpu_model(),
        "int8_features": int8_features(cpuinfo()),  # None: unknown (no /proc/cpuinfo)
        "cores": cores(),
        "machine": platform.machine(),
        "bits": pointer_bits(),
        "os": f"{platform.system()} {platform.release()}",
        "memory_mb": round(total) if total else None,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pillow": package_version("pillow"),
        **{row.name: package_version(row.package) for row in registry.BACKENDS},
    }
