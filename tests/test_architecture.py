"""The architecture's rules, checked on the source rather than stated in prose:

- the import rules between layers (`.importlinter` at the repository's root), by import-linter;
- an import inside a function body says in a comment why it is there (keeping start-up fast,
  importing an optional or heavy library only when asked), instead of dodging an import cycle.

import-linter finds a package's modules by walking its folder, and fimls' sub-packages live in
other top-level folders (pyproject's package-dir); so the check runs on a copy of the sources laid
out as the import namespace, made from that same mapping.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("fimls", "lsp", "context", "engine")


def _package_dirs() -> dict[str, Path]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    found = {}
    for package in setuptools["packages"]:
        parent = package
        while parent not in mapping:  # a sub-package sits inside its nearest mapped parent
            parent = parent.rpartition(".")[0]
        found[package] = ROOT / mapping[parent] / Path(*package.split(".")[len(parent.split(".")):])
    return found


def _namespace_copy(target: Path) -> Path:
    for package, folder in _package_dirs().items():
        destination = target.joinpath(*package.split("."))
        destination.mkdir(parents=True, exist_ok=True)
        for source in folder.glob("*.py"):
            shutil.copy2(source, destination / source.name)
    return target


def test_every_package_on_disk_is_declared():
    """A folder of modules left out of pyproject's packages would be neither installed nor checked."""
    declared = {folder.resolve() for folder in _package_dirs().values()}
    on_disk = {
        init.parent.resolve() for top in PRODUCT for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk <= declared, sorted(map(str, on_disk - declared))


def test_the_import_rules_hold(tmp_path):
    tree = _namespace_copy(tmp_path / "src")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run(
        [lint, "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=tree, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tree)}, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_the_check_sees_a_broken_rule(tmp_path):
    """The same check on a copy where context imports the engine: it must fail, or it proves nothing."""
    tree = _namespace_copy(tmp_path / "src")
    module = tree / "fimls" / "context" / "paths.py"
    module.write_text(module.read_text() + "\nfrom fimls.engine.model import decode  # noqa\n")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run(
        [lint, "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=tree, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tree)}, timeout=300,
    )
    assert result.returncode != 0 and "fimls.context.paths -> fimls.engine.model.decode" in result.stdout, result.stdout


def function_body_imports_without_a_reason(source: str) -> list[int]:
    """Lines of imports inside a function whose run of import lines has no comment: on one of its
    lines, or on the line just above it."""
    lines = source.splitlines()
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for statement in ast.walk(node):
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                first = statement.lineno - 1
                while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                    first -= 1
                last = statement.lineno - 1
                while last + 1 < len(lines) and lines[last + 1].strip().startswith(("import ", "from ")):
                    last += 1
                run = lines[first : last + 1]
                above = lines[first - 1].strip() if first > 0 else ""
                if not any("#" in line for line in run) and not above.startswith("#"):
                    missing.append(statement.lineno)
    return sorted(set(missing))


def test_imports_inside_functions_say_why():
    unexplained = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if lines := function_body_imports_without_a_reason(path.read_text(encoding="utf-8")):
                unexplained[str(path.relative_to(ROOT))] = lines
    assert not unexplained, f"imports inside functions with no comment saying why: {unexplained}"


def test_the_reason_check_finds_a_bare_import():
    assert function_body_imports_without_a_reason("def f():\n    import json\n") == [2]
    assert function_body_imports_without_a_reason("def f():\n    import json  # only when asked\n") == []
    assert function_body_imports_without_a_reason("def f():\n    # heavy, only when asked\n    import json\n    import csv\n") == []
