"""`fmnist-edge export --verify DIR`: did DIR's models come from this code and DIR's Keras model?

The check a user can run on the shipped models: re-export the Keras model the manifest names, with
the manifest's own settings, into a temporary folder (DIR is never written), then compare file by
file. Same package versions on the same CPU give the same bytes ("identical"). Elsewhere the float
kernels that fold BatchNorm round the last bits differently, and the int8 models follow, so a file
that differs is judged as parity judges a conversion: "equivalent" when the rebuilt model passes
the parity tolerance of its precision against the shipped one, with the evidence printed (largest
weight difference in ulps or quantization steps, largest score difference on the golden images,
top-1 agreement on the 10k test images, and which package versions and CPU differ); else "different".
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist_edge.common.errors import ExportError
from fmnist_edge.export import parity
from fmnist_edge.export.manifest import PHOTO_INPUTS_FILE, PROVENANCE_FIELDS, REFERENCE_FILE, tool_versions
from fmnist_edge.export.options import ExportOptions, Tolerance
from fmnist_edge.runtime.backends import load_backend, run_batched
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.formats import EXPORTED
from fmnist_edge.runtime.golden import GOLDEN_FILE, load_golden
from fmnist_edge.runtime.machine import cpu_model
from fmnist_edge.runtime.manifest import MANIFEST_FILE, load_manifest, sha256_file
from fmnist_edge.train import data as fmnist_data

IDENTICAL, EQUIVALENT, DIFFERENT = "identical", "equivalent", "different"


@dataclass
class FileVerdict:
    file: str
    verdict: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Verification:
    folder: Path
    files: list[FileVerdict]
    differences: list[str]  # package versions and CPU: what may explain a non-identical file

    @property
    def ok(self) -> bool:
        return all(f.verdict != DIFFERENT for f in self.files)


def verify(folder: Path, photos: Path | None = None, data_dir: Path | None = None,
           log: Callable[[str], None] = print) -> Verification:
    """Re-export `folder`'s Keras model as its manifest says it was exported and compare every file."""
    from fmnist_edge.export.pipeline import export

    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        raise ModelError(f"{folder}: no {MANIFEST_FILE}; --verify needs a folder that export wrote")
    shipped = load_manifest(folder)
    source = folder / shipped["source"]["file"]
    _check_hashes(folder, shipped, source)
    options = _options_of(shipped, folder, photos)
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-verify-") as tmp:
        rebuilt_dir = Path(tmp) / "export"
        log(f"re-exporting {source} into a temporary folder, as {folder / MANIFEST_FILE} records ...")
        rebuilt = export(source, rebuilt_dir, options, data_dir=data_dir, log=lambda line: log("  " + line))
        test = fmnist_data.load(data_dir)
        files = [_compare_model(folder, rebuilt_dir, entry, test) for entry in shipped["models"]]
        files += _compare_derived(folder, rebuilt_dir, shipped, rebuilt)
    return Verification(folder, files, _environment_differences(shipped, rebuilt))


def _check_hashes(folder: Path, manifest: dict, source: Path) -> None:
    """Every file the manifest lists, and the Keras model, must hash as listed: else it was tampered
    with, and a re-export would prove nothing about it."""
    listed = [(m["file"], m["sha256"]) for m in manifest["models"]]
    listed += [(manifest[k]["file"], manifest[k]["sha256"])
               for k in ("golden", "reference_logits", "photo_val_inputs") if manifest.get(k)]
    listed.append((source.name, manifest["source"]["sha256"]))
    for name, expected in listed:
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != expected:
            raise ModelError(f"{path}: its SHA-256 is not the manifest's: the file was changed after export")


def _options_of(manifest: dict, folder: Path, photos: Path | None) -> ExportOptions:
    """The export settings the manifest records; the validation photos from `photos`, else the 28x28
    inputs the folder ships (photo_val_inputs.npz, hash-checked above)."""
    names = {m["file"] for m in manifest["models"]}
    kinds = tuple(dict.fromkeys(f.kind for f in EXPORTED if f.filename in names))
    if not kinds:
        raise ModelError(f"{folder / MANIFEST_FILE}: lists no model to verify")
    calibration = manifest.get("calibration") or {}
    photo_inputs = None
    if (manifest.get("unsure_calibration") or {}).get("photos"):
        shipped_inputs = manifest.get("photo_val_inputs")
        if photos is None and shipped_inputs is None:
            raise ExportError(f"{folder}: its threshold was set on validation photos; name them with --photos")
        photo_inputs = photos or folder / shipped_inputs["file"]
    defaults = ExportOptions()
    return ExportOptions(kinds=kinds, int8=any(f.precision == "int8" for f in EXPORTED if f.filename in names),
                         calibration_size=int(calibration.get("images", defaults.calibration_size)),
                         seed=int(calibration.get("seed", defaults.seed)), photos=photo_inputs,
                         fp32_tolerance=_recorded_tolerance(manifest, "fp32", defaults.fp32_tolerance),
                         int8_tolerance=_recorded_tolerance(manifest, "int8", defaults.int8_tolerance))


def _recorded_tolerance(manifest: dict, precision: str, default: Tolerance) -> Tolerance:
    """The parity bar the folder's models of this precision passed when exported (the manifest's
    `checked`): the re-export must pass the same bar, and a differing file is judged by it."""
    for entry in manifest["models"]:
        checked = entry.get("checked")
        if entry.get("precision") == precision and isinstance(checked, dict):
            try:
                return Tolerance(**checked)
            except TypeError:
                raise ModelError(f"models[{entry['file']}].checked is not a parity tolerance: {checked}") from None
    return default


def _compare_model(folder: Path, rebuilt_dir: Path, entry: dict, ds: fmnist_data.FashionMNIST) -> FileVerdict:
    name = entry["file"]
    shipped, rebuilt = folder / name, rebuilt_dir / name
    if not rebuilt.is_file():
        return FileVerdict(name, DIFFERENT, ["the re-export did not produce it"])
    if sha256_file(shipped) == sha256_file(rebuilt):
        return FileVerdict(name, IDENTICAL)
    pixels = ds.test_images[..., None]
    a = run_batched(load_backend(shipped, threads=None).run, pixels, 500)
    b = run_batched(load_backend(rebuilt, threads=None).run, pixels, 500)
    default = parity.INT8 if entry["precision"] == "int8" else parity.FLOAT
    report = parity.compare(name, b, a, ds.test_labels, _recorded_tolerance({"models": [entry]}, entry["precision"],
                                                                             default))
    golden = load_golden(folder / GOLDEN_FILE).indices if (folder / GOLDEN_FILE).is_file() else np.arange(100)
    evidence = [
        weight_difference(shipped, rebuilt),
        f"largest score difference on the golden images {np.abs(a[golden] - b[golden]).max():.3g}",
        f"top-1 agreement on the 10k test images {100 * report.agreement:.2f}%",
        f"test accuracy {100 * report.reference_accuracy:.2f}% shipped, {100 * report.accuracy:.2f}% rebuilt",
    ]
    if not report.passed:
        return FileVerdict(name, DIFFERENT, [*evidence, "outside parity: " + "; ".join(report.failures)])
    return FileVerdict(name, EQUIVALENT, evidence)


def _compare_derived(folder: Path, rebuilt_dir: Path, shipped: dict, rebuilt: dict) -> list[FileVerdict]:
    """Golden data, Keras reference scores and photo inputs: identical, or how far apart."""
    out = []
    for key, name in (("golden", GOLDEN_FILE), ("reference_logits", REFERENCE_FILE),
                      ("photo_val_inputs", PHOTO_INPUTS_FILE)):
        if not shipped.get(key):
            continue
        a, b = folder / shipped[key]["file"], rebuilt_dir / name
        if not b.is_file():
            out.append(FileVerdict(name, DIFFERENT, ["the re-export did not produce it"]))
        elif sha256_file(a) == sha256_file(b):
            out.append(FileVerdict(name, IDENTICAL))
        else:
            out.append(_compare_arrays(name, a, b))
    return out


def _compare_arrays(name: str, a: Path, b: Path) -> FileVerdict:
    """Two .npz files: the same inputs (images, labels) and scores within float parity, else different."""
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        if set(x.files) != set(y.files):
            return FileVerdict(name, DIFFERENT, [f"arrays {sorted(x.files)} against {sorted(y.files)}"])
        evidence, same_inputs = [], True
        for key in sorted(x.files):
            p, q = x[key], y[key]
            if p.shape != q.shape or p.dtype != q.dtype:
                shapes = f"{key}: {p.dtype}{list(p.shape)} against {q.dtype}{list(q.shape)}"
                return FileVerdict(name, DIFFERENT, [shapes])
            if np.array_equal(p, q):
                continue
            if p.dtype.kind == "f":
                gap = float(np.abs(p - q).max())
                evidence.append(f"{key}: largest difference {gap:.3g}")
                same_inputs &= gap < parity.FLOAT.max_abs_diff or key == "scores"  # int8 scores follow the model
            else:
                evidence.append(f"{key}: {int((p != q).sum())} of {p.size} values differ")
                same_inputs &= key in ("model_sha256", "recorded_with")
    return FileVerdict(name, EQUIVALENT if same_inputs else DIFFERENT, evidence)


def weight_difference(a: Path, b: Path) -> str:
    """The largest difference between the two models' constant tensors, paired by position: in ulps
    for float weights, in quantization steps for integer ones."""
    pairs = list(zip(_constants(a), _constants(b), strict=False))
    if not pairs or len(_constants(a)) != len(_constants(b)):
        return "weights: the two graphs hold different tensors"
    ulps, steps, differing, total = 0, 0, 0, 0
    for p, q in pairs:
        if p.shape != q.shape or p.dtype != q.dtype:
            return "weights: the two graphs hold tensors of different shapes"
        total += p.size
        differing += int((p != q).sum())
        if p.dtype == np.float32:
            ulps = max(ulps, int(np.abs(_ordered(p) - _ordered(q)).max(initial=0)))
        elif p.dtype.kind in "iu":
            steps = max(steps, int(np.abs(p.astype(np.int64) - q.astype(np.int64)).max(initial=0)))
    return (f"weights: {differing} of {total} values differ, by at most {ulps} ulps (float) "
            f"and {steps} steps (integer)")


def _ordered(x: np.ndarray) -> np.ndarray:
    """float32 bits as integers in the order of the floats, so a difference counts ulps."""
    bits = x.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _constants(path: Path) -> list[np.ndarray]:
    """A model's constant tensors, in graph order (needs the [train] extra's onnx or TensorFlow)."""
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        return [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    dtypes = {0: np.float32, 2: np.int32, 4: np.int64, 9: np.int8}
    out = []
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data) and tensor.type in dtypes:
            out.append(np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtypes[tensor.type]))
    return out


def _environment_differences(shipped: dict, rebuilt: dict) -> list[str]:
    """What differs between the export that made the folder and this one, beyond the time and commit."""
    out = []
    before, now = shipped.get("tools") or {}, rebuilt.get("tools") or tool_versions()
    for package in sorted(set(before) | set(now)):
        if before.get(package) != now.get(package):
            out.append(f"{package} {before.get(package)} then, {now.get(package)} now")
    cpu_then = (shipped.get("machine") or {}).get("cpu")
    if cpu_then != cpu_model():
        out.append(f"CPU {cpu_then or 'not recorded'} then, {cpu_model()} now")
    kept = {k: v for k, v in shipped.items() if k not in PROVENANCE_FIELDS}
    if kept.get("source", {}).get("sha256") != rebuilt.get("source", {}).get("sha256"):
        out.append("a different Keras model")
    return out
