"""Shared fixtures. The smoke run trains once per session: 1 epoch on 512 images, well under a minute;
the tests that use it are marked `slow`."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    from typer.testing import CliRunner

    from fmnist_edge.app import app

    out = tmp_path_factory.mktemp("smoke-train")
    result = CliRunner().invoke(app, ["train", "--subset", "512", "--epochs", "1", "--no-photos", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that trains or exports (it uses the smoke run) is `slow`: `-m "not slow"` leaves
    them out while iterating. CI runs them all."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI every test must run: a skip there means a missing dependency, so it fails the run."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("FMNIST_EDGE_NO_SKIPS") and skipped:
        print(f"\nFMNIST_EDGE_NO_SKIPS is set and {skipped} tests were skipped: failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
