"""Where a run came from: git commit and library versions. Recorded with every artifact."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from fmnist_edge.runtime.machine import package_version


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def versions(*packages: str) -> dict[str, str | None]:
    return {"python": platform.python_version(), **{name: package_version(name) for name in packages}}

