"""The packages' import rules: ``shared`` is the contract both sides import, so it imports neither
``producer`` nor ``worker``; the Lambda package (``worker`` + ``shared``) never imports ``producer``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"shared": {"producer", "worker"}, "worker": {"producer"}}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in a module, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_follow_the_rules(package):
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in sorted(imported_packages(path))
        if name in FORBIDDEN[package]
    ]
    assert not broken, "\n".join(broken)


def test_h5coro_is_imported_by_its_adapter_alone():
    """All coupling to h5coro (it is subclassed and its private attributes read) sits in one module."""
    adapter = ROOT / "shared" / "granules" / "h5coro_adapter.py"
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in ("shared", "worker", "producer", "bench")
        for path in (ROOT / package).rglob("*.py")
        if any(name == "h5coro" for _, name in imported_packages(path))
    )
    assert importers == [str(adapter.relative_to(ROOT))]


def test_h5coro_is_the_release_its_adapter_was_tested_with():
    from importlib.metadata import version

    from shared.granules.h5coro_adapter import TESTED_WITH

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"h5coro=={TESTED_WITH}"' in pyproject
    assert version("h5coro") == TESTED_WITH
