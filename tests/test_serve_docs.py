"""docs/serve.md's systemd unit is valid: `systemd-analyze verify` on the very text a Pi user copies,
with this machine's paths put in (verify checks that ExecStart's program exists and the user is known)."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "serve.md"


def unit_from_docs() -> str:
    blocks = re.findall(r"```ini\n(.*?)```", DOC.read_text(), re.S)
    units = [b for b in blocks if b.startswith("[Unit]")]
    assert len(units) == 1, "docs/serve.md should show one systemd unit"
    return units[0]


def test_the_unit_runs_serve_on_every_interface_and_treats_130_as_a_clean_stop() -> None:
    unit = unit_from_docs()
    assert re.search(r"^ExecStart=\S+/fmnist-edge serve --host 0\.0\.0\.0", unit, re.M)
    assert re.search(r"^SuccessExitStatus=130$", unit, re.M)  # serve's exit code after SIGTERM
    assert re.search(r"^WantedBy=multi-user\.target$", unit, re.M)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd)")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    program = Path(sys.executable).parent / "fmnist-edge"
    assert program.is_file(), f"{program}: the console script of this install"
    unit = unit_from_docs()
    unit = re.sub(r"^ExecStart=\S+/fmnist-edge", f"ExecStart={program}", unit, flags=re.M)
    unit = re.sub(r"^User=\S+", f"User={getpass.getuser()}", unit, flags=re.M)
    path = tmp_path / "fmnist-edge.service"
    path.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
