"""The README is a manual a newcomer follows on a fresh clone: its figures are the manifest's, it
names no build-machine path, it stays short, and its quick start runs and leaves the checkout clean."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_headline_accuracy_and_size_rows_are_the_manifest_s() -> None:
    # scripts/readme_figures.py prints them from artifacts/manifest.json; a re-export without
    # re-running it (and pasting its table) fails here.
    rows = subprocess.run([sys.executable, "scripts/readme_figures.py", "--manifest-only"], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=120).stdout.strip().splitlines()
    assert len(rows) == 2
    for row in rows:
        assert row in README.splitlines(), row


def test_the_readme_is_a_manual_not_a_lab_notebook() -> None:
    assert len(README.splitlines()) <= 300
    assert "../shared" not in README and not re.search(r"(?<![\w.])/(work|home|root|tmp)/", README)
    for placeholder in ("FIGURES", "MACHINE", "CLASSIFY_OUTPUT", "VERIFY_OUTPUT", "SERVE_SECTION"):
        assert placeholder not in README


def test_every_command_the_reference_lists_exists_and_every_command_is_listed() -> None:
    import typer

    from fmnist_edge.app import app

    commands = set(typer.main.get_command(app).commands)
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", README.split("## Reference", 1)[1], flags=re.M))
    assert listed == commands


def test_the_docs_the_readme_links_exist() -> None:
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).exists(), link


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or importlib.util.find_spec("tensorflow") is None,
                    reason="needs git and the [train] extra")
def test_the_quick_start_runs_in_a_clone_and_leaves_it_clean(tmp_path: Path) -> None:
    """The quick start's commands, top to bottom, in a clone of HEAD: each exits 0 and git status
    stays empty (reports go under ignored folders). The installed package is the one under test."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    block = README.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert [c.split()[1] for c in commands] == ["classify", "evaluate-photos", "export", "evaluate", "bench",
                                                "selftest"]
    exe = Path(sys.executable).parent / "fmnist-edge"
    env = {**os.environ, "COLUMNS": "200"}
    for command in commands:
        args = command.split()[1:]
        if args[0] == "bench":
            args += ["--no-keras", "--budget", "0.05"]  # the figures are not the point here, the exit code is
        done = subprocess.run([str(exe), *args], cwd=clone, capture_output=True, text=True, timeout=1800, env=env)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""
