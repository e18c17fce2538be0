"""The core stays pure: no I/O, threads, clocks, drivers, MQTT or SQLite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "edge" / "sorter"
FORBIDDEN = {
    "edge.drivers",
    "edge.store",
    "edge.link",
    "edge.cli",
    "edge.daemon",
    "edge.station",
    "paho",
    "sqlite3",
    "threading",
    "time",
    "datetime.datetime.now",
    "socket",
    "serial",
    "gpiozero",
    "random",
    "asyncio",
    "os",
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    bad = {n for n in imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
    assert bad == set()
