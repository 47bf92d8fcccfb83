"""The training record: one typed schema that every reader goes through, so a bad record is one line.

What a user relies on: the shipped record (written before records had a version) still reads; a
record from another version, with a wrong type or a missing field is refused naming the field;
`train --resume` and `export` say so in one line with exit 2, before any work; and no malformed
record of any shape reaches the code as anything but that one error.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.train.config import TrainConfig
from fmnist_edge.train.record import RECORD_VERSION, RecordError, parse_record, read_record

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SHIPPED = ARTIFACTS / "fmnist_cnn.training.json"
# The record of the model shipped in 0.2.0, kept with the experiments: written before record_version existed.
VERSION_1 = ARTIFACTS.parent / "docs" / "experiments" / "records-shipped-0.2.0" / "fmnist_cnn.training.json"


def shipped() -> dict:
    return json.loads(SHIPPED.read_text())


def version_1() -> dict:
    return json.loads(VERSION_1.read_text())


def test_the_shipped_record_reads_as_the_default_recipe() -> None:
    record = read_record(SHIPPED)
    assert record.record_version == RECORD_VERSION
    # the recipe is the defaults; `auto` precision is recorded as what it resolved to on the training machine
    assert record.config.precision in ("float32", "bfloat16")
    assert replace(record.config, precision="auto") == TrainConfig()
    assert record.status == "completed" and len(record.history) == record.config.epochs
    assert record.photos is not None and record.photos.labels_sha256 == shipped()["photos"]["labels_sha256"]


def test_a_record_of_version_1_reads_as_today_s_schema() -> None:
    record = read_record(VERSION_1)
    assert "record_version" not in version_1()  # written before the field existed
    assert record.record_version == RECORD_VERSION
    # 0.2.0's recipe, trained before bfloat16 existed
    assert record.config == replace(TrainConfig(), epochs=40, weight_decay=5e-4, precision="float32")
    assert record.status == "completed" and len(record.history) == 40
    assert record.photos is not None and record.photos.labels_sha256 == version_1()["photos"]["labels_sha256"]


def test_a_written_record_reads_back_equal(tmp_path: Path) -> None:
    from fmnist_edge.train.record import write_record

    record = read_record(SHIPPED)
    write_record(record, tmp_path / "r.json")
    assert read_record(tmp_path / "r.json") == record
    assert json.loads((tmp_path / "r.json").read_text())["record_version"] == RECORD_VERSION


@pytest.mark.parametrize(("change", "says"), [
    (lambda r: r.update(record_version=99), "record_version 99 is not one this fmnist-edge reads"),
    (lambda r: r.update(record_version="2"), "record_version '2' is not one"),
    (lambda r: r.pop("data_sha256"), "field data_sha256 is missing"),
    (lambda r: r["config"].update(epochs="40"), "field config.epochs is \"40\", not a whole number"),
    (lambda r: r["config"]["model"].update(stages=[[32], ["x"]]), "field config.model.stages"),
    (lambda r: r["config"].update(renamed_field=1), "unknown field 'config.renamed_field'"),
    (lambda r: r.update(photos=5), "field photos is 5, not an object"),
    (lambda r: r.update(teacher={"file": "t.keras", "sha256": "0" * 64}), "field teacher: distillation"),
    (lambda r: r["config"].update(distill=0.5), "field config.distill: distillation"),
    (lambda r: r.update(status="paused"), "field status 'paused'"),
    (lambda r: r["config"].update(select="median"), "field config.select 'median'"),
    (lambda r: r.update(history={"epoch": 1}), "field history is"),
])
def test_a_bad_record_is_refused_naming_the_field(change, says: str) -> None:
    data = version_1()  # a version-1 record, so that the fields removed since are read as such
    change(data)
    with pytest.raises(RecordError, match=None) as caught:
        parse_record(data, "run/fmnist_cnn.training.json")
    message = str(caught.value)
    assert message.startswith("run/fmnist_cnn.training.json: ") and says in message and "\n" not in message


def _mutations(rng: random.Random, value: object, depth: int = 0) -> object:
    """A random structural change somewhere in a JSON value: a type swapped, a key dropped or added."""
    junk = [None, True, 0, -1, 1.5, "", "x", [], {}, [1, "a"], {"k": None}, 2**70, "²"]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.2:
            value.pop(key)
        elif roll < 0.3:
            value[rng.choice(["extra", "config", "", "0"])] = rng.choice(junk)
        else:
            value[key] = _mutations(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        value[i] = _mutations(rng, value[i], depth + 1)
        return value
    return rng.choice(junk)


def test_no_malformed_record_gets_past_the_reader_as_anything_but_one_line() -> None:
    """1,000 seeded mutations of the shipped record: each reads as a record or is a RecordError."""
    rng = random.Random(20261204)
    base = shipped()
    refused = 0
    for _ in range(1000):
        data = _mutations(rng, copy.deepcopy(base))
        try:
            parse_record(data, "r.json")
        except RecordError as exc:
            refused += 1
            assert "\n" not in str(exc) and str(exc).startswith("r.json: ")
    assert refused > 500  # most mutations break a field; the rest land where any value is allowed


@pytest.mark.slow
def test_a_record_of_another_version_stops_resume_and_export_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    data = shipped()
    data["record_version"] = 99
    (tmp_path / "fmnist_cnn.training.json").write_text(json.dumps(data))
    (tmp_path / "fmnist_cnn.keras").write_bytes((ARTIFACTS / "fmnist_cnn.keras").read_bytes())
    resumed = CliRunner().invoke(app, ["train", "--resume", "--out", str(tmp_path)])
    exported = CliRunner().invoke(app, ["export", str(tmp_path / "fmnist_cnn.keras"), "--out", str(tmp_path / "x")])
    for result in (resumed, exported):
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines()[-1].startswith("error: ")
        assert "record_version 99" in result.stderr and "Traceback" not in result.output
