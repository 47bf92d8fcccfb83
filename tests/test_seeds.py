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


@pytest.mark.slow
def test_a_stopped_seed_run_resumes_with_the_same_command(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    from fmnist_edge.train import loop

    finish_epoch = loop.Recorder.on_epoch_end

    def stop_after_the_first_epoch(self, epoch, logs=None):
        finish_epoch(self, epoch, logs)
        raise KeyboardInterrupt  # as Ctrl-C right after a checkpoint

    monkeypatch.setattr(loop.Recorder, "on_epoch_end", stop_after_the_first_epoch)
    args = ["train", "--seeds", "3", "--subset", "256", "--epochs", "2", "--no-photos", "--out", str(tmp_path)]
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 130 and "the same command again resumes" in stopped.stderr
    assert not (tmp_path / "seeds.json").exists()
    monkeypatch.setattr(loop.Recorder, "on_epoch_end", finish_epoch)

    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr
    record = json.loads((tmp_path / "seed-3" / "fmnist_cnn.training.json").read_text())
    assert [row["epoch"] for row in record["history"]] == [1, 2] and record["resumed"][0]["after_epoch"] == 1
    summary = json.loads((tmp_path / "seeds.json").read_text())
    assert summary["float"]["sd"] is None and summary["float"]["n"] == 1  # one seed: no spread to speak of
    assert resumed.stdout.splitlines()[-1].endswith("± n/a%")
