"""The command line as a whole: one exit-code table, a missing model is exit 2 in every command,
and no module of the package imports another that imports it back.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from fmnist_edge import exits
from fmnist_edge.app import app
from fmnist_edge.common import errors as common_errors
from fmnist_edge.runtime import errors

ROOT = Path(__file__).resolve().parents[1]


def error_classes() -> list[type[errors.FmnistEdgeError]]:
    """Every error class the package defines: runtime/errors.py's and common/errors.py's."""
    return [cls for module in (errors, common_errors) for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, errors.FmnistEdgeError)]


def test_every_error_class_has_its_own_row_in_the_exit_table() -> None:
    # A new error class must be given a code on purpose, not inherit one by accident.
    missing = [cls.__name__ for cls in error_classes() if cls not in exits.EXIT_CODES]
    assert missing == []


EXPECTED = {
    "FmnistEdgeError": 2,
    "DataError": 1,
    "ModelError": 2,
    "GoldenError": 1,
    "MissingGoldenError": 2,
    "ImageError": 1,
    "NotAnImageError": 1,
    "UsageError": 2,
    "ExportError": 2,
    "ParityError": 1,
    "RecordError": 2,
    "MissingExtraError": 2,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_table_maps_each_error_class_to_its_documented_code(name: str) -> None:
    cls = getattr(errors, name, None) or getattr(common_errors, name)
    error = cls("x", None) if cls is errors.MissingExtraError else cls("x")
    assert exits.exit_code(error) == EXPECTED[name]


def test_an_unlisted_subclass_takes_its_nearest_base_class_code() -> None:
    class LaterParityError(common_errors.ParityError):
        pass

    assert exits.exit_code(LaterParityError("x")) == exits.EXIT_FAILED


# --- a missing model ----------------------------------------------------------------------------

MISSING = "no-such-model"


@pytest.mark.parametrize(
    "args",
    [
        ["classify", "--model", f"{MISSING}.tflite", "examples/test_0000_ankle_boot.png"],
        ["evaluate", f"{MISSING}.tflite", "--no-plots"],
        ["evaluate-photos", "examples", "--model", f"{MISSING}.onnx"],
        ["bench", f"{MISSING}.tflite"],
        ["selftest", "--model", f"{MISSING}.tflite"],
        pytest.param(["export", f"{MISSING}.keras", "--out", "{tmp}"], marks=pytest.mark.slow),  # imports TensorFlow
    ],
    ids=lambda args: args[0],
)
def test_a_missing_model_is_exit_2_in_every_command_that_takes_one(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if args[0] == "export":
        pytest.importorskip("tensorflow", reason="export checks for TensorFlow before the model")
        pytest.importorskip("tf2onnx", reason="export checks for tf2onnx before the model")
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert MISSING in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written for a model that is not there


@pytest.mark.parametrize("command", ["data", "train", "export", "evaluate", "classify", "evaluate-photos",
                                     "bench", "selftest", "doctor"])
def test_every_command_documents_its_exit_codes(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # the help is re-wrapped to the terminal's width
    assert "Exit codes: 0" in text or "Exit 0" in text, text


def test_version_is_the_installed_distributions() -> None:
    import importlib.metadata

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"fmnist-edge {importlib.metadata.version('fmnist-edge')}\n"


QUIET_SCRIPT = """
import os, sys
from fmnist_edge.quiet import tensorflow_logs
with tensorflow_logs("--verbose" in sys.argv):
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")  # as TensorFlow's C++ writes
    print("error: ours", file=sys.stderr)
print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_native_log_lines_are_hidden_unless_verbose_and_our_errors_never_are(verbose: bool) -> None:
    flag = ["--verbose"] if verbose else []
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, *flag], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    native = ["I0000 port.cc:153] oneDNN custom operations are on"] if verbose else []
    assert result.stderr.splitlines() == [*native, "error: ours"]
    assert result.stdout.strip() == ("None" if verbose else "3")  # set before TensorFlow is imported


TENSORFLOW_NOISE = ("oneDNN", "cuda", "absl", "TF_ENABLE_ONEDNN_OPTS", "I0000", "W0000", "E0000")


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["train", "--subset", "64", "--epochs", "1", "--no-photos", "--out", "{tmp}"],
    ["evaluate", str(ROOT / "artifacts" / "fmnist_cnn.keras")],
], ids=lambda args: args[0])
def test_a_tensorflow_command_prints_only_its_own_lines_unless_verbose(args: list[str], tmp_path: Path) -> None:
    """What a user sees: the command's progress and result, none of TensorFlow's start-up lines (a
    decorator moved onto another function once let them through unnoticed)."""
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = [a.replace("{tmp}", str(tmp_path / "run")) for a in args]
    run = [sys.executable, "-c", "from fmnist_edge.main import main; main()", *argv]
    quiet = subprocess.run(run, capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    noise = [line for line in quiet.stderr.splitlines() if any(word in line for word in TENSORFLOW_NOISE)]
    assert noise == []
    if args[0] == "train":
        assert "last epoch 1: val accuracy" in quiet.stderr + quiet.stdout
        argv = [*argv, "--force"]
    loud = subprocess.run([*run[:3], *argv, "--verbose"], capture_output=True, text=True, timeout=300, env=env)
    assert loud.returncode == 0, loud.stderr
    assert any(word in loud.stderr for word in TENSORFLOW_NOISE)  # so the quiet run's check can fail


@pytest.mark.parametrize("command", ["train", "export", "evaluate"])
def test_the_tensorflow_commands_take_verbose(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert "--verbose" in result.stdout


# --- without TensorFlow ---------------------------------------------------------------------------

BLOCK_TENSORFLOW = """
import sys
for name in ("tensorflow", "keras", "tf2onnx"):
    sys.modules[name] = None  # as if not installed: import raises, importlib.util.find_spec says None
from fmnist_edge.main import main
sys.argv = ["fmnist-edge", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "args",
    [["train", "--epochs", "1"], ["export"], ["evaluate", "artifacts/fmnist_cnn.keras"], ["bench", "--keras"]],
    ids=lambda args: args[0],
)
def test_without_tensorflow_a_command_that_needs_it_says_what_to_install_in_one_line(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'error: tensorflow is not installed; this command needs it: pip install "fmnist-edge[train]"'
    ]


# --- imports --------------------------------------------------------------------------------------


def module_files() -> dict[str, Path]:
    """Installed module name -> source file, from pyproject's package-dir mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found = {}
    for package, folder in config.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports anywhere, at the top or inside a function: a lazy import
    still closes a cycle the moment a formatter or a refactor hoists it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found |= {n for n in names if n in known}
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    files = module_files()
    graph = {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}
    cycles: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycles.append(" -> ".join([*stack[stack.index(name):], name]))
            return
        if name in done:
            return
        for child in sorted(graph[name]):
            visit(child, [*stack, name])
        done.add(name)

    for start in sorted(graph):
        visit(start, [])
    assert cycles == []
