"""`fmnist-edge doctor`: can this machine classify, and if not, why not?

It gathers facts (platform, versions, which interpreters import, cores, memory, the bundled
models and their hashes), then checks them against combinations known not to work. The check
is a pure function of those facts, `known_problems`, so the tests can feed it a Raspberry Pi
with a 32-bit OS or a numpy 2 install without owning one.

Ready means: the automatic choice works. That is the first backend in the registry's priority
order that imports (runtime/registry.py: LiteRT, tflite-runtime, onnxruntime, then numpy), with
the bundled model it runs; its model must be present, match the manifest's SHA-256, and classify
one image. Each interpreter's line says whether it is that choice, and if not why not (missing,
or a backend before it comes first), because "which one will classify use?" is the question a
user with two interpreters, or none, is asking.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fmnist_edge.runtime import machine, registry
from fmnist_edge.runtime import manifest as manifests
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.errors import FmnistEdgeError, ModelError
from fmnist_edge.runtime.formats import default_format
from fmnist_edge.runtime.golden import GOLDEN_FILE
from fmnist_edge.runtime.spec import INPUT_SHAPE

ARM32 = ("armv7l", "armv6l", "armv8l", "armhf", "arm")
ARM64 = ("aarch64", "arm64")


def known_problems(
    machine_name: str,
    bits: int,
    python: tuple[int, int],
    numpy_version: str,
    installed: Mapping[str, str | None],
    usable: Collection[str],
) -> list[str]:
    """Warnings for combinations that are known not to work; pure, so tests can feed it any machine.

    installed: backend name -> installed version (None when not installed);
    usable: the backends whose module actually imported.
    """
    problems = []
    numpy_major = int(numpy_version.split(".")[0])
    if installed.get("tflite-runtime") and numpy_major >= 2:
        problems.append(
            f"tflite-runtime {installed['tflite-runtime']} was built for numpy 1.x and fails to import with "
            f"numpy {numpy_version}: use ai-edge-litert, or pip install \"numpy<2\""
        )
    if python >= (3, 12) and (installed.get("tflite-runtime") or "litert" not in usable):
        problems.append(
            f"tflite-runtime has no wheels for Python {python[0]}.{python[1]} (its last release stops at 3.11): "
            "use ai-edge-litert or onnxruntime (pip install \"fmnist-edge[onnx]\"), or Python 3.11"
        )
    arm32 = machine_name.lower() in ARM32 or (machine_name.lower() in ARM64 and bits == 32)
    if arm32:
        userland = "" if machine_name.lower() in ARM32 else f" (a {machine_name} kernel, but 32-bit Python)"
        problems.append(
            f"32-bit ARM{userland}: ai-edge-litert ships no wheels for it; classify falls back to the numpy "
            "backend, or add an interpreter: Debian's python3-onnxruntime (trixie), or "
            'pip install "fmnist-edge[tflite-runtime]" on Python 3.11 with numpy<2 (bookworm); or install a 64-bit OS'
        )
    return problems


@dataclass
class DoctorReport:
    facts: list[tuple[str, str]]
    interpreters: list[machine.Interpreter]
    models: list[str]  # one line per checked model
    warnings: list[str]
    ready_with: list[str] = field(default_factory=list)  # "litert + fmnist_cnn_int8.tflite", ... in priority order
    choice: str | None = None  # what auto uses: the first usable backend + its bundled model

    @property
    def ready(self) -> bool:
        return self.choice is not None and self.choice in self.ready_with

    def lines(self) -> list[str]:
        out = [f"{name:<12} {value}" for name, value in self.facts]
        out.append("interpreters (without --backend, the first that imports is used)")
        for i in self.interpreters:
            state = f"ok       {i.version or '?':<8} {self._role(i)}" if i.usable else f"missing  {i.error}"
            out.append(f"  {i.backend:<15} {state}")
        out.append("models")
        out += [f"  {line}" for line in self.models]
        out += [f"warning: {w}" for w in self.warnings]
        if self.ready:
            out.append(f"doctor: ready ({self.choice})")
        elif self.choice is not None and self.ready_with:
            out.append(f"doctor: not ready: the automatic choice, {self.choice}, fails; with --backend these "
                       f"work: {'; '.join(self.ready_with)}")
        else:
            out.append("doctor: not ready: no installed interpreter can run a verified bundled model")
        return out

    def _role(self, interpreter: machine.Interpreter) -> str:
        """Why a usable backend is, or is not, the one used without --backend."""
        row = registry.row(interpreter.backend)
        only = "" if set(row.precisions) >= {"int8", "fp32"} else f"; only {'/'.join(row.precisions)} models"
        model = _model_for(row.name)
        if self.choice is not None and self.choice.startswith(f"{row.name} + "):
            return f"used: the first that imports, runs {model}{only}"
        first = next(i.backend for i in self.interpreters if i.usable)
        return f"not used: {first} comes first (--backend {row.name} runs {model}{only})"


def _model_for(backend: str) -> str:
    """The bundled model `backend` runs by default (its row's kind and precisions decide)."""
    row = registry.row(backend)
    return default_format(row.kind, row.precisions).filename


def check_model(directory: Path, manifest: dict | None, filename: str, backend: str | None) -> tuple[str, bool]:
    """One line about a bundled model, and whether `backend` ran it (False when backend is None)."""
    path = directory / filename
    if not path.is_file():
        return f"{filename}: missing", False
    described = f"{filename}: {path.stat().st_size:,} bytes"
    if manifest is None:
        return f"{described}, not verified (no manifest)", False
    if manifests.entry_for(manifest, filename) is None:
        return f"{described}, not listed in the manifest", False
    try:
        manifests.verify(path, manifest)
    except FmnistEdgeError as exc:
        return f"{described}, {exc}", False
    described += ", sha256 matches the manifest"
    if backend is None:
        return f"{described}; no interpreter installed to run it", False
    try:
        import numpy as np

        t0 = time.perf_counter()
        loaded = load_backend(path, threads=1, backend=backend)
        if not np.isfinite(loaded.run(np.zeros((1, *INPUT_SHAPE), dtype=np.uint8))).all():
            raise ModelError("it gives non-finite scores (NaN or inf)")
    except FmnistEdgeError as exc:
        return f"{described}; fails on {backend}: {exc}", False
    return f"{described}, runs on {backend} ({1e3 * (time.perf_counter() - t0):.0f} ms to load and run)", True


def run_doctor() -> DoctorReport:
    import numpy as np

    interpreters = machine.probe_all()
    usable = [i.backend for i in interpreters if i.usable]
    total, available = machine.memory_mb()
    memory = "unknown" if total is None else f"{total:,.0f} MB total" + (
        f", {available:,.0f} MB available" if available is not None else "")
    bits = machine.pointer_bits()
    facts = [
        ("platform", f"{platform.system()} {platform.release()}, {platform.machine()}, {bits}-bit Python"),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("numpy", np.__version__),
        ("Pillow", machine.package_version("pillow") or "not installed"),
        ("cpu", f"{machine.cores()} cores, {machine.cpu_model()}"),
        ("int8 cpu", machine.int8_summary(machine.int8_features(machine.cpuinfo()))),
        ("memory", memory),
    ]

    directory = manifests.bundled_dir()
    manifest = None
    try:
        manifest = manifests.load_manifest(directory)
        manifest_line = f"{directory / manifests.MANIFEST_FILE}: present"
    except FmnistEdgeError as exc:
        manifest_line = str(exc)
    golden = directory / GOLDEN_FILE
    models = [manifest_line]
    runners: dict[str, str] = {}  # model file -> the first usable backend that runs it: each file loads once
    for name in usable:
        runners.setdefault(_model_for(name), name)
    worked = set()
    for filename in sorted(runners.keys() | {default_format().filename}, key=lambda f: (not f.endswith(".tflite"), f)):
        line, ran = check_model(directory, manifest, filename, runners.get(filename))
        models.append(line)
        if ran:
            worked.add(runners[filename])
    ready_with = [f"{name} + {_model_for(name)}" for name in usable if name in worked]  # in priority order
    models.append(f"{GOLDEN_FILE}: {'present' if golden.is_file() else 'missing'} (used by `fmnist-edge selftest`)")

    installed = {i.backend: i.version for i in interpreters}
    py = tuple(int(p) for p in platform.python_version_tuple()[:2])
    warnings = known_problems(platform.machine(), bits, (py[0], py[1]), np.__version__, installed, usable)
    choice = f"{usable[0]} + {_model_for(usable[0])}" if usable else None
    return DoctorReport(facts, interpreters, models, warnings, ready_with, choice)
