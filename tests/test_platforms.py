"""Platforms we cannot run here: what each one's install gets, and a runtime that imports and prints there.

Windows and macOS cannot be booted on this machine, so these tests check the two things that broke
on them (issue 12): the install markers (pip evaluates them on the user's machine, so we evaluate
them for each platform's marker values), and a runtime that neither imports a POSIX-only module
nor prints a character a Windows code page lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from fmnist_edge.main import SPELLINGS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "test_0000_ankle_boot.png"


# --- install markers ----------------------------------------------------------------------------------

def environment(system: str, machine: str, python: str) -> dict[str, str]:
    """PEP 508 marker values as pip computes them on that platform (sys_platform, platform_machine...)."""
    sys_platform = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}[system]
    return {"sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
            "python_version": python, "python_full_version": f"{python}.0", "os_name": "nt" if system == "Windows"
            else "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": f"{python}.0", "extra": ""}


def base_requirements(env: dict[str, str]) -> set[str]:
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [Requirement(d) for d in deps]
    return {r.name for r in reqs if r.marker is None or r.marker.evaluate(env)}


# ai-edge-litert 2.3.0's wheels: cp310-cp314 for manylinux_2_27 x86_64 and aarch64, macosx_12_0_arm64
# and win_amd64 (PyPI's file list, checked 2026-11). Where it has none, requiring it fails the whole
# `pip install .`, so the marker must leave it out there and the numpy backend takes over.
LITERT = [
    (("Linux", "x86_64"), True),
    (("Linux", "aarch64"), True),  # 64-bit Raspberry Pi OS
    (("Darwin", "arm64"), True),
    (("Windows", "AMD64"), True),  # what platform.machine() says on 64-bit Windows
    (("Darwin", "x86_64"), False),  # no wheel: numpy fallback, or [onnx]
    (("Linux", "armv7l"), False),  # 32-bit Raspberry Pi OS: nothing compiled from PyPI
    (("Linux", "armv6l"), False),
    (("Windows", "ARM64"), False),
]


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13", "3.14"])
@pytest.mark.parametrize(("platform", "has_litert"), LITERT, ids=lambda p: "-".join(p) if isinstance(p, tuple) else "")
def test_the_base_install_asks_for_litert_exactly_where_it_has_wheels(
    platform: tuple[str, str], has_litert: bool, python: str
) -> None:
    reqs = base_requirements(environment(*platform, python))
    assert ("ai-edge-litert" in reqs) == has_litert
    assert {"numpy", "pillow", "typer", "rich"} <= reqs  # the numpy backend's needs, on every platform


def test_lower_bounds_are_what_debian_bookworm_ships() -> None:
    # A 32-bit Pi takes numpy and Pillow from apt (python3-numpy 1.24.2, python3-pil 9.4.0 in bookworm):
    # the bounds must admit them, and CI runs the runtime at the bounds themselves (.ci/run).
    from packaging.requirements import Requirement

    deps = {r.name: r for r in map(Requirement, tomllib.loads((ROOT / "pyproject.toml").read_text())
                                   ["project"]["dependencies"])}
    assert deps["numpy"].specifier.contains("1.24.2") and deps["pillow"].specifier.contains("9.4.0")
    assert not deps["pillow"].specifier.contains("9.0.1")  # Image.Resampling is 9.1


def test_the_tflite_runtime_extra_pins_numpy_1() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(extras["tflite-runtime"]) == ["numpy<2", "tflite-runtime>=2.14"]


# --- a runtime that imports and prints on Windows ----------------------------------------------------

# A meta-path finder that refuses the POSIX-only modules, as Windows' Python has none of them.
# Installed before anything of ours is imported; the commands then run as the console script does.
BLOCK_POSIX = """
import sys
BLOCKED = {"resource", "fcntl", "termios", "pwd", "grp"}
class NotOnWindows:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked: Windows has none)")
        return None
for name in [m for m in sys.modules if m.partition(".")[0] in BLOCKED]:
    del sys.modules[name]
sys.meta_path.insert(0, NotOnWindows())
from fmnist_edge.main import main
sys.argv = ["fmnist-edge", *sys.argv[1:]]
main()
"""


def run_as_on_windows(*args: str) -> subprocess.CompletedProcess:
    """`fmnist-edge ARGS` with no POSIX-only module and output encoded as a Windows pipe encodes it."""
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    return subprocess.run([sys.executable, "-c", BLOCK_POSIX, *args], capture_output=True, timeout=300, env=env,
                          cwd=ROOT)


@pytest.mark.parametrize("args", [["selftest"], ["doctor"], ["classify", str(EXAMPLE)],
                                  ["bench", "--budget", "0.01", "--no-keras", "--backend", "numpy"]])
@pytest.mark.slow
def test_selftest_doctor_classify_and_bench_run_without_posix_modules_on_a_cp1252_console(args: list[str]) -> None:
    result = run_as_on_windows(*args)
    stdout, stderr = result.stdout.decode("cp1252"), result.stderr.decode("cp1252")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr and "UnicodeEncodeError" not in stderr
    expected = {"selftest": "selftest ok: 100/100 top-1, max |delta score| ", "doctor": "doctor: ready (",
                "classify": "Ankle boot", "bench": "numpy"}[args[0]]
    assert expected in stdout


def test_unprintable_characters_are_spelt_out_or_escaped() -> None:
    # What the handler writes on a cp1252 stream: our symbols spelt out, other scripts escaped.
    code = ("from fmnist_edge.main import survive_narrow_consoles\nsurvive_narrow_consoles()\n"
            "print('max |Δ score| ≥ 1e-4 → фото.jpg — ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert result.returncode == 0, result.stderr
    expected = "max |delta score| >= 1e-4 -> \\u0444\\u043e\\u0442\\u043e.jpg — ok"  # "—" is in cp1252
    assert result.stdout.decode("cp1252").strip() == expected
    assert all(spelt.isascii() for spelt in SPELLINGS.values())  # printable on any code page
