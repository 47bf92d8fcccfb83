"""The stages' layering, read from the source: data flows train -> export -> runtime, never back.

    runtime/  imports nothing of ours but runtime: it is what a Raspberry Pi installs and runs
    common/   runtime and common only: what train/ and export/ share
    train/    not export/, not the command line (so training works as a library)
    export/   not the command line (`from fmnist_edge import __version__` included)

Every import statement counts, wherever it is (imports inside functions are how the heavy and the
optional ones are written here), and so does a module named in full by a string, as the lazy
tables in runtime/__init__.py and runtime/registry.py name theirs for importlib. Relative imports
are resolved against the importing file's package. The command line is the `fmnist_edge` package
itself (cli/): `fmnist_edge` and each `fmnist_edge.<module>` that is not one of the stage folders.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = "fmnist_edge"
CLI = "cli"
# Each folder at the root with an __init__.py is a package: cli/ is fmnist_edge, the others fmnist_edge.<folder>.
FOLDERS = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
STAGES = [folder for folder in FOLDERS if folder != CLI]

DATA = "artifacts"  # the shipped models and manifest: package data the runtime loads, not code
# For each folder, the layers it may not import (a layer is a stage folder's name, or CLI).
FORBIDDEN: dict[str, set[str]] = {
    "runtime": {CLI, *STAGES} - {"runtime", DATA},
    "common": {CLI, *STAGES} - {"runtime", "common", DATA},
    "train": {"export", CLI},
    "export": {CLI},
}
MODULE_NAME = re.compile(rf"{TOP}(\.\w+)+(:\w+)?")  # "fmnist_edge.runtime.backends:TFLiteBackend"


def package_of(path: Path) -> str:
    """The dotted package a source file belongs to, as installed."""
    folder, *rest = path.relative_to(ROOT).parent.parts
    return ".".join([TOP if folder == CLI else f"{TOP}.{folder}", *rest])


def layer(module: str) -> str | None:
    """The layer a module of ours belongs to; None for anything not ours."""
    parts = module.split(".")
    if parts[0] != TOP:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else CLI


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `source`, a module of `package`, and for every string that
    names one of our modules. `from A import b` gives A.b: a submodule or a name of A, the layer is the same."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from .. import x` in fmnist_edge.train.data means fmnist_edge.x
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            yield node.lineno, node.value.partition(":")[0]


def violations(folder: str) -> list[str]:
    found = []
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files in {folder}/: the check would pass without looking"
    for path in files:
        for line, module in imports_in(path.read_text(encoding="utf-8"), package_of(path)):
            if layer(module) in FORBIDDEN[folder]:
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module} ({layer(module)})")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_each_stage_imports_only_the_layers_below_it(folder: str) -> None:
    found = violations(folder)

    assert not found, f"{folder}/ may not import {', '.join(sorted(FORBIDDEN[folder]))}:\n" + "\n".join(found)


def test_the_checker_sees_every_kind_of_import() -> None:
    # The rules above pass vacuously if the reader misses imports: here is one of each kind it must see.
    source = '''
import fmnist_edge.export.pipeline
from fmnist_edge import __version__
from fmnist_edge import export

def lazy():
    from fmnist_edge.options import fail
    from .. import export as relative
    from .data import load

TABLE = {"x": "fmnist_edge.export.golden:write_golden", "y": "not fmnist_edge.export"}
'''
    found = sorted(imports_in(source, "fmnist_edge.train"))

    assert found == [(2, "fmnist_edge.export.pipeline"), (3, "fmnist_edge.__version__"), (4, "fmnist_edge.export"),
                     (7, "fmnist_edge.options.fail"), (8, "fmnist_edge.export"), (9, "fmnist_edge.train.data.load"),
                     (11, "fmnist_edge.export.golden")]
    assert [layer(module) for _, module in found] == ["export", CLI, "export", CLI, "export", "train", "export"]


def test_the_folder_map_is_the_one_pyproject_installs() -> None:
    # If pyproject mapped a folder to another package name, the layers above would be checked wrongly.
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is in the standard library from Python 3.11")
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir = config["tool"]["setuptools"]["package-dir"]

    assert package_dir == {package_of(ROOT / folder / "__init__.py"): folder for folder in FOLDERS}
