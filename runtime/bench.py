"""`fmnist-edge bench`: what each shipped model costs on this machine, on every interpreter that can run it.

For each model x installed backend x thread count (1 and all cores) it measures load time, the
first inference, then at batch 1, 32 and 256: per-call latency percentiles and images/s.

How the numbers are taken, so they can be trusted and compared:
  * Inputs are prepared before any clock starts: the golden test images (runtime/golden.py) when
    installed, else fixed-seed random pixels; batches are tiled from them.
  * time.perf_counter wraps `backend.run` alone: the interpreter call plus the input cast and
    output dequantization every caller pays; never image decoding or preprocessing.
  * Warm-up calls come first (the first call at a new batch size reallocates tensors and packs
    weights); then a measurement runs `max_runs` calls or until `budget` seconds pass,
    whichever is first, and reports how many it got.
  * Medians, not means: p50 is the latency and throughput is batch / p50, so a stray pause from
    another process does not move either.
  * Peak RSS is the whole process's peak (VmHWM) when the row was measured. It only grows, so a
    row includes every model measured before it; bench one file alone for its own footprint.

Other model kinds (the Keras baseline, which needs TensorFlow) come in as extra `Target`s built
by the caller: this module never imports TensorFlow, train/ or export/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fmnist_edge.runtime import machine, registry
from fmnist_edge.runtime.backends import Backend, load_backend, run_batched
from fmnist_edge.runtime.errors import FmnistEdgeError, MissingExtraError, ModelError
from fmnist_edge.runtime.formats import FORMATS, kind_of
from fmnist_edge.runtime.golden import default_path, load_golden
from fmnist_edge.runtime.manifest import bundled_dir, entry_for, load_manifest, manifest_beside
from fmnist_edge.runtime.model_info import read_metadata
from fmnist_edge.runtime.spec import IMAGE_SIZE

BATCHES = (1, 32, 256)
DEFAULT_BUDGET = 1.0  # seconds per measurement: 4 models x 2 thread counts finish in well under a minute
MAX_RUNS = 1000
MIN_RUNS = 3  # even a tiny budget gets a median of three; the row says how many runs it had
WARMUP_RUNS = 10  # warm-up calls: at least one (the one that reallocates), at most this many...
WARMUP_SHARE = 0.1  # ...or this share of the budget, whichever ends first


@dataclass(frozen=True)
class Target:
    """One model on one backend. `load(threads)` opens it; threads=None means the backend's own default."""

    path: Path
    kind: str  # tflite | onnx | keras
    precision: str  # int8 | fp32 | unknown
    backend: str  # a registry row's name, or keras
    load: Callable[[int | None], Backend]
    threads: tuple[int | None, ...]
    prepare: Callable[[], object] | None = None  # untimed, just before the first load: e.g. import TensorFlow

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.precision}"


@dataclass
class Row:
    format: str
    precision: str
    backend: str
    threads: int | None  # None: the framework's default (Keras/TensorFlow cannot be set per model)
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float
    runs: int
    peak_rss_mb: float | None  # None where the OS does not say (machine.peak_rss_mb)
    size_bytes: int
    load_ms: float
    first_ms: float
    file: str
    accuracy: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, rounded to what the clock can resolve (0.1 µs) rather than float noise."""
        out = asdict(self)
        for key in ("p50_ms", "p90_ms", "p99_ms", "load_ms", "first_ms"):
            out[key] = round(out[key], 4)
        out["throughput_ips"] = round(out["throughput_ips"], 1)
        out["peak_rss_mb"] = None if out["peak_rss_mb"] is None else round(out["peak_rss_mb"], 1)
        if out["accuracy"] is None:
            del out["accuracy"]
        else:
            out["accuracy"] = round(out["accuracy"], 6)
        return out


@dataclass(frozen=True)
class Settings:
    budget: float = DEFAULT_BUDGET
    max_runs: int = MAX_RUNS
    batches: tuple[int, ...] = BATCHES


def thread_counts() -> tuple[int, ...]:
    cores = machine.cores()
    return (1, cores) if cores > 1 else (1,)


def precision_of(path: Path) -> str:
    """From the metadata export embeds in the file, else the manifest beside it, else 'unknown'."""
    try:
        precision = read_metadata(path).get("precision")
    except (FmnistEdgeError, ImportError, KeyError, ValueError):
        precision = None
    if precision is None:
        try:
            precision = (entry_for(manifest_beside(path) or {}, path.name) or {}).get("precision")
        except FmnistEdgeError:
            precision = None
    return str(precision or "unknown")


def manifest_models() -> list[Path]:
    """The bundled models, in the format table's order (tflite before onnx, fp32 before int8)."""
    directory = bundled_dir()
    listed = {m["file"] for m in load_manifest(directory).get("models", [])}
    order = [f.filename for f in FORMATS if f.filename in listed]
    return [directory / name for name in order + sorted(listed - set(order))]


def targets(paths: Sequence[Path] | None = None, backend: str | None = None) -> tuple[list[Target], list[str]]:
    """Every (model, usable backend) pair, and a note for each model or backend left out and why.

    `backend` None (or "auto") takes every installed row of the registry; a name takes that row
    alone, and one that does not import is an error naming its install command, as in classify.
    """
    rows = registry.BACKENDS if backend in (None, "auto") else (registry.row(backend),)
    usable = {i.backend: i for i in machine.probe_all()}
    if len(rows) == 1 and not usable[rows[0].name].usable:
        raise MissingExtraError(rows[0].package, rows[0].extra, rows[0].alternatives)
    found: list[Target] = []
    notes: list[str] = []
    for path in paths or manifest_models():
        path = Path(path)
        kind = kind_of(path)
        if kind not in registry.KINDS:
            raise ModelError(f"{path}: bench runs .tflite and .onnx files here; .keras needs --keras")
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        precision = precision_of(path)
        for row in (r for r in rows if r.kind == kind):
            if not row.runs(precision):
                notes.append(f"{row.name}: runs {'/'.join(row.precisions)} models only; skipped {path.name}")
                continue
            if not usable[row.name].usable:
                note = f"{row.name}: skipped, {usable[row.name].error}"
                if note not in notes:
                    notes.append(note)
                continue
            found.append(Target(path, kind, precision, row.name, _opener(path, row.name), thread_counts()))
    return found, notes


def _opener(path: Path, backend: str) -> Callable[[int | None], Backend]:
    return lambda threads: load_backend(path, threads, backend)


def bench_inputs(count: int = max(BATCHES), seed: int = 0) -> tuple[np.ndarray, str]:
    """uint8 [count, 28, 28, 1] test-like images, and where they came from."""
    try:
        images = load_golden(default_path()).images
        source = f"{len(images)} golden test images, tiled"
    except FmnistEdgeError:
        images = np.random.default_rng(seed).integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        source = "random uint8 pixels (no golden data installed)"
    reps = -(-count // len(images))
    return np.ascontiguousarray(np.tile(images, (reps, 1, 1))[:count, ..., None]), source


def time_calls(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, settings: Settings) -> np.ndarray:
    """Seconds per call of run(x): after a warm-up, up to max_runs calls or budget seconds."""
    warm_until = time.perf_counter() + WARMUP_SHARE * settings.budget
    for _ in range(WARMUP_RUNS):
        run(x)
        if time.perf_counter() > warm_until:
            break
    times: list[float] = []
    stop = time.perf_counter() + settings.budget
    while len(times) < settings.max_runs and (len(times) < MIN_RUNS or time.perf_counter() < stop):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def bench_target(
    target: Target,
    inputs: np.ndarray,
    settings: Settings,
    accuracy_data: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """All rows for one target: each thread count, each batch size; accuracy once, on the last load."""
    rows: list[Row] = []
    size = target.path.stat().st_size
    accuracy = None
    if target.prepare is not None:
        target.prepare()
    for threads in target.threads:
        log(f"bench: {target.path.name} on {target.backend}, {threads or 'default'} thread(s)")
        t0 = time.perf_counter()
        backend = target.load(threads)
        load_ms = 1e3 * (time.perf_counter() - t0)
        first = inputs[:1].copy()
        t0 = time.perf_counter()
        backend.run(first)
        first_ms = 1e3 * (time.perf_counter() - t0)
        for batch in settings.batches:
            x = np.ascontiguousarray(inputs[:batch])
            ms = 1e3 * time_calls(backend.run, x, settings)
            p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
            rows.append(Row(target.kind, target.precision, target.backend, threads, batch, p50, p90, p99,
                            batch / (p50 / 1e3), len(ms), machine.peak_rss_mb(), size, load_ms, first_ms,
                            target.path.name))
        if accuracy_data is not None and threads == target.threads[-1]:
            accuracy = accuracy_of(backend, *accuracy_data)
    for row in rows:
        row.accuracy = accuracy
    return rows


def accuracy_of(backend: Backend, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    pixels = images[..., None] if images.ndim == 3 else images
    return float((run_batched(backend.run, pixels, batch).argmax(1) == labels).mean())


def run_bench(
    all_targets: Sequence[Target],
    settings: Settings | None = None,
    accuracy_data: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Measure every target; returns the JSON document: {"machine", "method", "results"}."""
    settings = settings or Settings()
    inputs, source = bench_inputs(max(settings.batches))
    started = time.perf_counter()
    rows = [row for target in all_targets for row in bench_target(target, inputs, settings, accuracy_data, log)]
    return {
        "machine": machine.summary(),
        "method": {
            "inputs": source,
            "timed": "backend.run(batch) only: interpreter call + input cast + output dequantize",
            "budget_s": settings.budget,
            "max_runs": settings.max_runs,
            "throughput": "batch / p50",
            "peak_rss": "peak RSS (VmHWM) of the whole bench process when the row was measured (grows row by row)",
            "accuracy": "full 10k test set" if accuracy_data is not None else None,
            "wall_s": round(time.perf_counter() - started, 1),
        },
        "results": [row.to_dict() for row in rows],
    }
