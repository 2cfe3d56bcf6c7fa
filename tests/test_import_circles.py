"""No module of ``qualify/`` or ``service/`` imports, directly or around a circle, a module
that imports it back: every package reads from the bottom up (a circle is what made the old
``cli.py`` <-> ``batch_cli.py`` and ``outbox`` <-> ``main`` hard to change). Imports inside
functions count too: they hide a circle, they do not break it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def modules(*packages: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages``."""
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that ``name`` imports (``from p import m`` names p.m when
    that is a module, else p)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:
                if f"{base}.{a.name}" in known:
                    out.add(f"{base}.{a.name}")
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph_of(*packages: str) -> dict[str, set[str]]:
    known = modules(*packages)
    return {name: imports(name, path, known) for name, path in known.items()}


@pytest.mark.parametrize("package", ["qualify", "service"])
def test_no_import_circle(package: str) -> None:
    """Every circle is named with its modules (and the edges that close it)."""
    graph = graph_of("qualify", "service")
    mine = {k: v for k, v in graph.items() if k.split(".")[0] == package}
    found = circles(graph)
    bad = [g for g in found if any(m in mine for m in g)]
    assert bad == [], "\n".join(
        " <-> ".join(g) + ": " + "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(g)))}"
                                          for m in g) for g in bad)


def test_the_check_sees_a_circle() -> None:
    """The detector finds a circle through a function-level import (as outbox -> main was)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
