"""`train --seeds`: one run per seed, the table of mean ± sd of the float and int8 test accuracy, its
JSON, and a rerun that keeps what is finished."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_edge.app import app


@pytest.mark.parametrize(("extra", "says"), [
    (["--seeds", "0,0"], "a seed is repeated"),
    (["--seeds", "0,x"], "whole numbers"),
    (["--seeds", "-1"], "from 0 to"),
    (["--seeds", ","], "from 0 to"),
    (["--seeds", "0,1", "--seed", "3"], "--seed and --seeds"),
    (["--seeds", "0,1", "--resume"], "drop --seeds"),
])
def test_bad_seeds_are_one_line_before_any_data_is_read(tmp_path: Path, extra: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["train", *extra, "--no-photos", "--data-dir", str(tmp_path / "no-data"),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_seeds_give_a_table_of_mean_and_sd_and_a_rerun_keeps_them(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    args = ["train", "--seeds", "0,1", "--subset", "256", "--epochs", "1", "--no-photos", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    summary = json.loads((tmp_path / "seeds.json").read_text())
    assert [row["seed"] for row in summary["seeds"]] == [0, 1]
    for seed in (0, 1):
        record = json.loads((tmp_path / f"seed-{seed}" / "fmnist_cnn.training.json").read_text())
        assert record["config"]["seed"] == seed and record["status"] == "completed"
    for name in ("float", "int8"):
        values = [row[f"{name}_test_accuracy"] for row in summary["seeds"]]
        assert all(0.0 < v <= 1.0 for v in values)
        assert summary[name]["mean"] == pytest.approx((values[0] + values[1]) / 2)
        assert summary[name]["sd"] == pytest.approx(statistics.stdev(values))  # the sample sd (n - 1)
        assert summary[name]["sd"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
        assert summary[name]["n"] == 2
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["seed", "float", "Keras", "int8", "TFLite"]
    last = lines[-1]
    assert last.startswith("mean ± sd".rjust(10))
    for name in ("float", "int8"):
        stats = summary[name]
        assert f"{100 * stats['mean']:.2f} ± {100 * stats['sd']:.2f}%" in last

    # The same command again: nothing is trained or converted again, the table is the same.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.stdout == result.stdout
    assert again.stderr.count("trained already") == 2 and "measuring" not in again.stderr

    # Other settings into the same folder are refused, not mixed into one table.
    other = CliRunner().invoke(app, [*args[:-4], "2", "--no-photos", "--out", str(tmp_path)])
    assert other.exit_code == 2 and "other settings" in other.stderr
