"""`evaluate` and `evaluate-photos`: one evaluation loop for every format, and honest photo figures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.runtime.manifest import bundled_dir, load_manifest
from fmnist_edge.runtime.spec import CLASS_NAMES

ARTIFACTS = bundled_dir()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fmnist_cnn_int8.tflite", "fmnist_cnn_fp32.onnx"])
def test_evaluate_reports_the_manifest_accuracy_and_writes_report_files(name: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(app, ["evaluate", str(ARTIFACTS / name), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mirror_average"] is False  # the model's own figure, which the manifest records
    assert "mirror_disagreement_without_averaging" not in report
    entry = next(m for m in load_manifest()["models"] if m["file"] == name)
    assert report["accuracy"] == pytest.approx(entry["test_accuracy"], abs=2e-4)
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    assert set(report["per_class"]) == set(CLASS_NAMES)
    assert f"{100 * report['accuracy']:.2f}%" in result.output
    for png in ("confusion_matrix.png", "samples.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_mirror_average_reports_what_classify_answers(tmp_path: Path) -> None:
    # The figure a device user gets: the same answers as Classifier.predict, in a separate report.
    from fmnist_edge.runtime import Classifier
    from fmnist_edge.train import data

    model = ARTIFACTS / "fmnist_cnn_int8.tflite"
    result = CliRunner().invoke(app, ["evaluate", str(model), "--mirror-average", "--no-plots", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    ds = data.load()
    predicted = Classifier(model).predict(ds.test_images).argmax(1)
    assert report["mirror_average"] is True
    assert 0 < report["mirror_disagreement_without_averaging"] < 0.1
    assert report["accuracy"] == pytest.approx((predicted == ds.test_labels).mean(), abs=1e-9)
    assert "as classify does" in result.output


def test_evaluate_missing_model_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope.tflite"), "--no-plots"])
    assert result.exit_code == 2
    assert "not found" in result.output and "Traceback" not in result.output


def photo_folder(tmp_path: Path, labels_csv: str, encoding: str = "utf-8") -> Path:
    for name in ("photo_tshirt.jpg", "photo_ankle_boot.jpg"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "labels.csv").write_text(labels_csv, encoding=encoding)
    return tmp_path


def summary(output: str) -> tuple[dict[str, tuple[int, int]], int, int]:
    """({class: (hits, photos)}, hits, photos) from the per-class and top-1 lines evaluate-photos prints."""
    counts = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^  (\S.*?)\s+(\d+)/(\d+)\s+[\d.]+%$", output, re.M)}
    hits, total = re.search(r"^top-1 on \d+ photos: (\d+)/(\d+) = ", output, re.M).groups()
    return counts, int(hits), int(total)


def evaluate_photos(folder: Path, *args: str):
    return CliRunner().invoke(app, ["evaluate-photos", str(folder), "--no-plots", *args])


def test_evaluate_photos_counts_hits_per_class(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, "file,label\nphoto_tshirt.jpg,0\nphoto_ankle_boot.jpg,9\n")
    result = evaluate_photos(folder)
    assert result.exit_code == 0, result.output
    counts, hits, total = summary(result.stdout)
    assert set(counts) == {"T-shirt/top", "Ankle boot"} and total == 2
    assert all(n == 1 for _, n in counts.values())
    assert hits == sum(h for h, _ in counts.values())
    assert hits == sum(line.startswith("ok ") for line in result.stdout.splitlines())


def test_evaluate_photos_reads_spreadsheet_csv_and_reports_an_unreadable_photo(tmp_path: Path) -> None:
    # Saved by a spreadsheet: byte-order mark, class names instead of indices; one photo is missing.
    labels = "file,class_name\nphoto_tshirt.jpg,T-shirt/top\nphoto_ankle_boot.jpg,Ankle boot\ngone.jpg,Bag\n"
    folder = photo_folder(tmp_path, labels, encoding="utf-8-sig")
    result = evaluate_photos(folder)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == ["error: gone.jpg: no such file"]
    _, _, total = summary(result.stdout)
    assert total == 2 and "1 could not be read" in result.stdout


@pytest.mark.parametrize("row", ["missing.jpg", "missing.jpg,", ",3"], ids=["no-comma", "no-label", "no-file"])
def test_evaluate_photos_names_the_bad_row_of_a_labels_file(row: str, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, f"file,label\nphoto_tshirt.jpg,0\n{row}\n")
    result = evaluate_photos(folder)
    assert result.exit_code == 2
    assert "labels.csv:3:" in result.stderr and "Traceback" not in result.output


def test_evaluate_photos_rejects_a_bad_labels_file(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,label\nx.jpg,12\n")
    result = CliRunner().invoke(app, ["evaluate-photos", str(tmp_path)])
    assert result.exit_code == 2
    assert "labels.csv" in result.output and "Traceback" not in result.output


def test_evaluate_photos_split_json_and_report_pictures(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    labels = "file,label,split\nphoto_tshirt.jpg,0,val\nphoto_ankle_boot.jpg,9,train\n"
    folder = photo_folder(tmp_path / "photos", labels)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate-photos", str(folder), "--split", "val", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["photos"] == 1 and [r["file"] for r in document["results"]] == ["photo_tshirt.jpg"]
    assert sum(map(sum, document["confusion"]["counts"])) == 1
    assert document["per_class"]["T-shirt/top"]["photos"] == 1
    sure = document["not_unsure"]
    assert sure["answers"] + sure["flagged_unsure"] == 1
    assert sure["answers"] == sum(not r["unsure"] for r in document["results"])
    for name in ("confusion.png", "contact_sheet.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100


def test_evaluate_photos_without_a_split_column_refuses_split(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, "file,label\nphoto_tshirt.jpg,0\n")
    result = evaluate_photos(folder, "--split", "val")
    assert result.exit_code == 2 and "no 'split' column" in result.stderr
