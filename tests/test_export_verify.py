"""Verifiable exports: the same Keras model, package versions and CPU give the same bytes, and
`export --verify DIR` tells a user whether DIR's models came from DIR's Keras model and this code.

ONNX only (float and int8) keeps each of the four exports here short; TFLite goes through the
same pipeline, and the shipped folder is verified by hand in the README's "Verify" section.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.export import parity
from fmnist_edge.runtime.manifest import sha256_file

TINY = {"fp32_tolerance": parity.Tolerance(1e-3, 1.0, None), "int8_tolerance": parity.Tolerance(None, 0.9, 5.0)}
EPOCH = 1764806400  # 2025-12-04T00:00:00Z


def _export_beside(smoke_run: Path, folder: Path) -> dict:
    """As artifacts/ is made: the Keras model and its record, and the export of them, in one folder."""
    from fmnist_edge.export.options import ExportOptions
    from fmnist_edge.export.pipeline import export

    folder.mkdir()
    for name in ("fmnist_cnn.keras", "fmnist_cnn.training.json"):
        shutil.copy(smoke_run / name, folder / name)
    options = ExportOptions(kinds=("onnx",), int8=True, calibration_size=100, **TINY)
    return export(folder / "fmnist_cnn.keras", folder, options, log=lambda _: None)


@pytest.fixture(scope="module")
def two_exports(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reproducible")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
        _export_beside(smoke_run, root / "a")
        _export_beside(smoke_run, root / "b")
    return root / "a", root / "b"


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_two_exports_of_one_model_are_byte_identical_but_for_provenance(two_exports) -> None:
    from fmnist_edge.export.manifest import PROVENANCE_FIELDS

    a, b = two_exports
    manifest_a, manifest_b = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    files = [m["file"] for m in manifest_a["models"]] + [manifest_a["reference_logits"]["file"]]
    assert len(files) == 3
    for name in files:
        assert sha256_file(a / name) == sha256_file(b / name), name
    assert manifest_a["created"] == manifest_b["created"] == "2025-12-04T00:00:00Z"  # SOURCE_DATE_EPOCH
    assert {k: v for k, v in manifest_a.items() if k not in PROVENANCE_FIELDS} == \
        {k: v for k, v in manifest_b.items() if k not in PROVENANCE_FIELDS}


def test_verify_finds_every_file_identical_and_writes_nothing(two_exports) -> None:
    a, _ = two_exports
    before = _listing(a)
    result = CliRunner().invoke(app, ["export", "--verify", str(a)])
    assert result.exit_code == 0, result.output
    verdicts = [line.split()[:2] for line in result.stdout.splitlines() if line[:1].isalpha()
                and line.split()[0] in ("identical", "equivalent", "different")]
    assert sorted(verdicts) == [["identical", "fmnist_cnn_fp32.onnx"], ["identical", "fmnist_cnn_int8.onnx"],
                                ["identical", "fmnist_cnn_keras_test_logits.npz"]]
    assert f"{a}: verified: 3 identical, 0 equivalent, 0 different" in result.stdout
    assert _listing(a) == before


def _relist(folder: Path, name: str) -> None:
    """Make the manifest list `name`'s new bytes, as an export on another machine would have."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == name)
    entry["sha256"], entry["size_bytes"] = sha256_file(folder / name), (folder / name).stat().st_size
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_verify_tells_equivalent_models_from_different_ones_with_evidence(two_exports, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    a, _ = two_exports
    folder = tmp_path / "elsewhere"
    shutil.copytree(a, folder)
    # fp32: one weight one ulp away, as another CPU's kernels fold BatchNorm. int8: the head's bias
    # pushed far off, as a wrong model would be.
    for name, change in (("fmnist_cnn_fp32.onnx", "ulp"), ("fmnist_cnn_int8.onnx", "bias")):
        proto = onnx.load(str(folder / name))
        floats = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
        target = floats[0] if change == "ulp" else next(t for t in floats if len(t.dims) == 1 and t.dims[0] == 10)
        values = numpy_helper.to_array(target).copy()
        if change == "ulp":
            values.flat[0] = np.nextafter(values.flat[0], np.float32(np.inf))
        else:
            values[:] = 0
            values[3] = 1e4
        target.CopyFrom(numpy_helper.from_array(values, target.name))
        onnx.save(proto, str(folder / name))
        _relist(folder, name)
    before = _listing(folder)
    result = CliRunner().invoke(app, ["export", "--verify", str(folder)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "equivalent  fmnist_cnn_fp32.onnx" in out and "by at most 1 ulps (float)" in out
    assert "top-1 agreement on the 10k test images 100.00%" in out
    assert "different   fmnist_cnn_int8.onnx" in out and "outside parity" in out
    assert "identical   fmnist_cnn_keras_test_logits.npz" in out
    assert "NOT verified: 1 identical, 1 equivalent, 1 different" in out
    assert _listing(folder) == before


@pytest.mark.parametrize("case", ["tampered", "no-manifest", "other-version"])
def test_verify_refuses_a_folder_it_cannot_vouch_for_in_one_line(two_exports, tmp_path: Path, case: str) -> None:
    a, _ = two_exports
    folder = tmp_path / case
    shutil.copytree(a, folder)
    if case == "tampered":
        model = folder / "fmnist_cnn_int8.onnx"
        model.write_bytes(model.read_bytes()[:-1] + b"\0")
        says = "fmnist_cnn_int8.onnx: its SHA-256 is not the manifest's"
    elif case == "no-manifest":
        (folder / "manifest.json").unlink()
        says = "no manifest.json"
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["schema"] = 99
        (folder / "manifest.json").write_text(json.dumps(manifest))
        says = "schema"
    before = _listing(folder)
    result = CliRunner().invoke(app, ["export", "--verify", str(folder)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr
    assert _listing(folder) == before
