"""`fmnist-edge tune`: bad input is one line and exit 2 before any training; workers (real processes)
share a SQLite study and a PostgreSQL one started here; a worker killed mid-trial leaves the study
usable; `tune --best` prints a `train` command the app accepts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fmnist_edge.app import app
from fmnist_edge.train.config import TrainConfig
from fmnist_edge.train.tune import SPACE, STUDY_NAME, field_value, with_values

EXE = Path(sys.executable).parent / "fmnist-edge"
SMALL = ["--epochs", "2", "--subset", "256", "--no-photos"]  # a trial in seconds


def needs_optuna() -> None:
    pytest.importorskip("optuna", reason="needs the [tune] extra")


def one_line_error(result, says: str) -> None:
    assert result.exit_code == 2, result.output
    assert says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


# --- the search space -----------------------------------------------------------------------------


def test_every_tuned_field_has_a_train_option_and_its_default_is_in_range() -> None:
    train_options = {opt for p in typer.main.get_command(app).commands["train"].params for opt in p.opts}
    recipe = TrainConfig()
    for param in SPACE:
        assert param.flag in train_options, param
        assert param.low <= field_value(recipe, param.path) <= param.high, param  # the baseline is a point of it
    changed = with_values(recipe, {"augment.erase_prob": 0.25, "model.dropout": 0.1, "peak_lr": 0.05})
    assert (changed.augment.erase_prob, changed.model.dropout, changed.peak_lr) == (0.25, 0.1, 0.05)
    assert changed.augment.flip == recipe.augment.flip and changed.model.stages == recipe.model.stages


# --- bad input: one line, exit 2, nothing trained ------------------------------------------------


@pytest.mark.parametrize("trials", ["0", "-3"])
def test_no_trials_is_refused(tmp_path: Path, trials: str) -> None:
    result = CliRunner().invoke(app, ["tune", "--trials", trials, *SMALL, "--out", str(tmp_path / "t")])
    one_line_error(result, f"--trials {trials}")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(("url", "says"), [
    ("not a url", "is not a database URL"),
    ("mysql://u@localhost/db", "is not supported"),
    ("sqlite://", "in-memory"),
])
def test_a_malformed_storage_url_is_refused(tmp_path: Path, url: str, says: str) -> None:
    needs_optuna()
    result = CliRunner().invoke(app, ["tune", "--storage", url, *SMALL, "--out", str(tmp_path / "t"),
                                      "--data-dir", str(tmp_path / "no-data")])
    one_line_error(result, says)
    assert not (tmp_path / "t").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_postgres_is_refused_without_showing_the_password(tmp_path: Path) -> None:
    needs_optuna()
    url = f"postgresql+psycopg://tuner:s3cret@127.0.0.1:{free_port()}/studies"  # nothing listens there
    result = CliRunner().invoke(app, ["tune", "--storage", url, *SMALL, "--out", str(tmp_path / "t")])
    one_line_error(result, "cannot open the database")
    assert "s3cret" not in result.output and "***" in result.stderr


def make_study(url: str, attrs: dict) -> None:
    import optuna

    study = optuna.create_study(storage=url, study_name=STUDY_NAME, direction="maximize")
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def test_a_study_of_another_search_space_version_is_refused(tmp_path: Path) -> None:
    needs_optuna()
    url = f"sqlite:///{tmp_path}/study.db"
    make_study(url, {"search_space_version": 0, "settings": {}})
    result = CliRunner().invoke(app, ["tune", "--storage", url, *SMALL, "--out", str(tmp_path / "t"),
                                      "--data-dir", str(tmp_path / "no-data")])
    one_line_error(result, "search space version 0")
    best = CliRunner().invoke(app, ["tune", "--best", "--storage", url])
    one_line_error(best, "search space version 0")


def test_a_worker_with_other_settings_is_refused(tmp_path: Path) -> None:
    needs_optuna()
    from fmnist_edge.train.tune import SEARCH_SPACE_VERSION

    url = f"sqlite:///{tmp_path}/study.db"
    make_study(url, {"search_space_version": SEARCH_SPACE_VERSION,
                     "settings": {"epochs": 5, "subset": None, "seed": 0, "photos": False, "heartbeat": 60}})
    result = CliRunner().invoke(app, ["tune", "--storage", url, *SMALL, "--out", str(tmp_path / "t")])
    one_line_error(result, "was made with --epochs 5 --seed 0 --no-photos")


def test_best_of_a_missing_or_empty_study_is_one_line(tmp_path: Path) -> None:
    needs_optuna()
    one_line_error(CliRunner().invoke(app, ["tune", "--best", "--out", str(tmp_path)]), "no such study database")
    assert not (tmp_path / "study.db").exists()  # asking did not create one
    url = f"sqlite:///{tmp_path}/study.db"
    make_study(url, {})
    one_line_error(CliRunner().invoke(app, ["tune", "--best", "--storage", url, "--study-name", "other"]),
                   "no study 'other'")


# --- real workers ---------------------------------------------------------------------------------


def worker(out: Path, storage: str, trials: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(EXE), "tune", "--trials", str(trials), *SMALL, "--out", str(out),
                             "--storage", storage, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    return stdout


def trials_of(storage: str) -> list:
    import optuna

    return optuna.load_study(study_name=STUDY_NAME, storage=storage).get_trials()


def assert_filled_by_both(storage: str, wanted: int, workers: int = 2) -> list:
    import optuna

    trials = trials_of(storage)
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # Two workers that look at the same moment may both start the last trial (docs/tune.md).
    assert wanted <= len(finished) <= wanted + workers - 1, [t.state for t in trials]
    assert len({t.user_attrs["worker"] for t in finished}) == workers  # each worker ran trials
    assert trials[0].params == {p.path: field_value(TrainConfig(), p.path) for p in SPACE if not p.photos_only}
    return finished


def assert_best_is_a_train_command(storage: str, finished: list) -> None:
    import optuna

    result = CliRunner().invoke(app, ["tune", "--best", "--storage", storage])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert "\n" not in line and line.startswith("fmnist-edge train ")
    args = line.split()[2:]
    train = typer.main.get_command(app).commands["train"]
    ctx = train.make_context("train", list(args))  # parses and checks every option, trains nothing
    best = max((t for t in finished if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    assert ctx.params["lr"] == best.params["peak_lr"] and ctx.params["dropout"] == best.params["model.dropout"]
    assert ctx.params["erase_prob"] == best.params["augment.erase_prob"]
    assert (ctx.params["epochs"], ctx.params["subset"], ctx.params["no_photos"]) == (2, 256, True)


@pytest.mark.slow
def test_two_workers_fill_one_sqlite_study_and_best_prints_a_train_command(tmp_path: Path) -> None:
    needs_optuna()
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    storage = f"sqlite:///{tmp_path}/study.db"
    workers = [worker(tmp_path / "runs", storage, 5) for _ in range(2)]
    for process in workers:
        assert "study 'fmnist-edge':" in finish(process)
    finished = assert_filled_by_both(storage, 5)
    for trial in finished:
        record = json.loads((Path(trial.user_attrs["folder"]) / "fmnist_cnn.training.json").read_text())
        assert record["config"]["peak_lr"] == trial.params["peak_lr"]  # each trial trained its own settings
    assert_best_is_a_train_command(storage, finished)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_the_study_to_the_next(tmp_path: Path) -> None:
    needs_optuna()
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    import optuna

    storage = f"sqlite:///{tmp_path}/study.db"
    killed = subprocess.Popen([str(EXE), "tune", "--trials", "2", "--epochs", "6", "--subset", "512",
                               "--no-photos", "--heartbeat", "1", "--out", str(tmp_path / "runs"),
                               "--storage", storage], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "runs" / "trial-0000" / "fmnist_cnn.training.json"
    deadline = time.monotonic() + 300
    while not record.is_file() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.1)
    assert record.is_file(), killed.communicate()[1][-2000:]
    killed.send_signal(signal.SIGKILL)  # no handler, no clean-up: as a power cut or the OOM killer
    killed.communicate(timeout=30)
    assert trials_of(storage)[0].state == optuna.trial.TrialState.RUNNING  # it died mid-trial
    time.sleep(2.5)  # past the grace period (two heartbeats) its silence means dead

    finish(subprocess.Popen([str(EXE), "tune", "--trials", "2", "--epochs", "6", "--subset", "512", "--no-photos",
                             "--heartbeat", "1", "--out", str(tmp_path / "runs"), "--storage", storage],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    trials = trials_of(storage)
    assert trials[0].state == optuna.trial.TrialState.FAIL
    done = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(done) >= 2
    assert any(t.params == trials[0].params for t in done)  # the dead trial's settings were tried again


# --- PostgreSQL: a real server, started and stopped here ----------------------------------------


def postgres_bin() -> Path | None:
    """Debian's server binaries live outside PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port; its URL. As root, initdb refuses to run, so the
    server runs as the `postgres` user Debian's package creates, in a folder given to it."""
    pytest.importorskip("psycopg", reason="needs the [tune] extra")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's server (Debian: apt-get install postgresql)")
    home = Path(tempfile.mkdtemp(prefix="fmnist-edge-pg-"))  # not under pytest's 0700 tmp: postgres must enter
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_fill_one_postgres_study(tmp_path: Path, postgres: str) -> None:
    needs_optuna()
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    # Each worker has its own --out, as on two machines; the study is the server's.
    workers = [worker(tmp_path / f"machine-{i}", postgres, 4) for i in range(2)]
    for process in workers:
        finish(process)
    finished = assert_filled_by_both(postgres, 4)
    assert_best_is_a_train_command(postgres, finished)


def test_the_search_space_table_in_the_docs_is_the_code_s() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "tune.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    assert len(rows) == len(SPACE)
    for param, row in zip(SPACE, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0].startswith(f"`{param.path}`") and cells[1] == f"`{param.flag}`", row
        assert cells[2] == f"{param.low!r} to {param.high!r}" and cells[3] == ("log" if param.log else "linear"), row


@pytest.mark.slow
def test_a_stopped_study_continues_with_the_same_command(tmp_path: Path) -> None:
    needs_optuna()
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    import optuna

    storage = f"sqlite:///{tmp_path}/study.db"
    args = [str(EXE), "tune", "--trials", "2", "--epochs", "4", "--subset", "512", "--no-photos",
            "--out", str(tmp_path / "runs"), "--storage", storage]
    stopped = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "runs" / "trial-0000" / "fmnist_cnn.training.json"
    deadline = time.monotonic() + 300
    while not record.is_file() and time.monotonic() < deadline and stopped.poll() is None:
        time.sleep(0.1)
    stopped.send_signal(signal.SIGTERM)  # as Ctrl-C, systemd or a container stop
    _, stderr = stopped.communicate(timeout=60)
    assert stopped.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and stderr.splitlines()[-1].startswith("interrupted; the same command again")
    assert trials_of(storage)[0].state == optuna.trial.TrialState.FAIL
    assert json.loads(record.read_text())["status"] == "interrupted"

    finish(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    trials = trials_of(storage)
    done = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(done) == 2 and done[0].params == trials[0].params  # the stopped settings were trained again
