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
