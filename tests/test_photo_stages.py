"""`fmnist-edge bench --photos DIR`: every photo's time split into the stages of its preprocessing and
the model. The figures themselves are machine-dependent and not checked; their bookkeeping is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import garment, invoke

from fmnist_edge.runtime.photo_stages import STAGES

PHOTOS = Path(__file__).resolve().parent / "data" / "photos"


def test_every_photo_gets_every_stage_and_a_total_that_adds_up(tmp_path: Path) -> None:
    for name in ("3_dress_09.jpg", "7_sneaker_09.jpg"):
        shutil.copy(PHOTOS / name, tmp_path / name)
    garment(tmp_path / "dataset.png")  # 28x28: passes through, so it has no resize, segment or cut out
    result = invoke("bench", "--photos", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [p["file"] for p in doc["photos"]] == ["3_dress_09.jpg", "7_sneaker_09.jpg", "dataset.png"]
    for photo in doc["photos"]:
        assert all(photo[stage] >= 0 for stage in STAGES)
        assert abs(sum(photo[stage] for stage in STAGES) - photo["total"]) < 0.01
        assert photo["segment"] > 0 if photo["file"].endswith(".jpg") else photo["segment"] == 0
    assert list(doc["stages"]) == [*STAGES, "total"] and doc["unreadable"] == []


def test_an_unreadable_photo_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    shutil.copy(PHOTOS / "3_dress_09.jpg", tmp_path / "ok.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    result = invoke("bench", "--photos", tmp_path, "--markdown")
    assert result.exit_code == 1
    assert "error: " in result.stderr and "broken.jpg: not an image Pillow can read" in result.stderr
    assert "| segment |" in result.stdout


def test_photos_with_more_than_one_model_is_a_usage_error(tmp_path: Path) -> None:
    shutil.copy(PHOTOS / "3_dress_09.jpg", tmp_path / "ok.jpg")
    models = sorted((Path(__file__).resolve().parent.parent / "artifacts").glob("*.tflite"))[:2]
    result = invoke("bench", *models, "--photos", tmp_path)
    assert result.exit_code == 2 and "at most one" in result.stderr
