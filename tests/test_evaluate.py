"""`evaluate` and `evaluate-photos`: one evaluation loop for every format, and honest photo figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.runtime.manifest import bundled_dir, load_manifest
from fmnist_edge.runtime.spec import CLASS_NAMES

ARTIFACTS = bundled_dir()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["fmnist_cnn_int8.tflite", "fmnist_cnn_fp32.onnx"])
def test_evaluate_reports_the_manifest_accuracy_and_writes_report_files(name: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(app, ["evaluate", str(ARTIFACTS / name), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    entry = next(m for m in load_manifest()["models"] if m["file"] == name)
    assert report["accuracy"] == pytest.approx(entry["test_accuracy"], abs=2e-4)
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]) == set(CLASS_NAMES)
    assert f"{100 * report['accuracy']:.2f}%" in result.output
    for png in ("confusion_matrix.png", "samples.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_missing_model_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope.tflite"), "--no-plots"])
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output


def test_evaluate_photos_counts_hits_per_class(tmp_path: Path) -> None:
    for name in ("photo_tshirt.jpg", "photo_ankle_boot.jpg"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "labels.csv").write_text("file,label\nphoto_tshirt.jpg,0\nphoto_ankle_boot.jpg,9\n")
    result = CliRunner().invoke(app, ["evaluate-photos", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "top-1 on 2 photos:" in result.output
    assert "T-shirt/top" in result.output and "Ankle boot" in result.output


def test_evaluate_photos_rejects_a_bad_labels_file(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,label\nx.jpg,12\n")
    result = CliRunner().invoke(app, ["evaluate-photos", str(tmp_path)])
    assert result.exit_code == 2
    assert "labels.csv" in result.output and "Traceback" not in result.output
