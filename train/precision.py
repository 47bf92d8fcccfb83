"""What `train --precision auto` means on this machine: bfloat16 where the CPU computes it natively.

Mixed bfloat16 (TensorFlow's oneDNN kernels; the weights, BatchNorm's arithmetic and the classifier stay
float32) makes an epoch of our network 1.39x faster on an x86 CPU with AVX-512 BF16 (docs/levers.md),
which buys more epochs in the same wall time. Elsewhere TensorFlow emulates it (2.5x the CPU time of
float32) or cannot run it, so auto means float32 there.
Whatever the run trained in, the model it writes computes in float32: export and the runtime never see
bfloat16. The record keeps the resolved value, so a resumed run trains as it started.
"""

from __future__ import annotations

import platform
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # x86 flags in /proc/cpuinfo


def resolve_precision(requested: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`auto` resolved to float32 or bfloat16; an explicit choice is kept as it is."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    return "bfloat16" if native_bf16(cpuinfo) else "float32"


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True on Linux x86 CPUs whose flags name a bfloat16 dot product; elsewhere we cannot tell cheaply."""
    flags = _x86_flags(cpuinfo)
    return flags is not None and bool(_NATIVE_BF16_FLAGS & flags)


def bfloat16_warning(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """For an explicit `--precision bfloat16`: None where it is native or we cannot tell; a line to
    print where TensorFlow emulates it; ValueError where TensorFlow cannot run it at all.

    Measured with TensorFlow 2.21 by limiting oneDNN's instruction set (ONEDNN_MAX_CPU_ISA): with
    AVX-512 but no BF16 a step costs 2.5x the CPU time of float32; with AVX2 alone the first
    convolution fails deep inside TensorFlow."""
    flags = _x86_flags(cpuinfo)
    if flags is None or _NATIVE_BF16_FLAGS & flags:
        return None
    if {"avx512f", "avx512bw"} <= flags:
        return ("this CPU has no native bfloat16 (AVX-512 BF16 or AMX): TensorFlow emulates it, about 2.5x "
                "slower than --precision float32")
    raise ValueError("--precision bfloat16: this CPU has neither native bfloat16 (AVX-512 BF16, AMX) nor "
                     "AVX-512, and TensorFlow cannot train in it here; use --precision float32 or auto")


def _x86_flags(cpuinfo: Path) -> set[str] | None:
    """The CPU's flags from /proc/cpuinfo on Linux x86; None elsewhere or when unreadable."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[-1].split())
    return None
