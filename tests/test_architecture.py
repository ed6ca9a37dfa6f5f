"""The architecture, checked on the code's own imports (every import, at module level or inside
a function): the coordinator and the site never import each other, neither imports the
simulation package, `common` imports none of them, and no modules import each other in a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "client", "server", "simulation", "configs")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `path` imports (a `from pkg import name` counts `pkg.name` when that
    is a module, else `pkg`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize(
    "importer,forbidden",
    [
        ("server", "client"),
        ("client", "server"),
        ("server", "simulation"),
        ("client", "simulation"),
        ("common", "client"),
        ("common", "server"),
        ("common", "simulation"),
    ],
)
def test_layering(graph, importer, forbidden):
    bad = sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        if top(a) == importer
        for b in deps
        if top(b) == forbidden
    )
    assert not bad, f"{importer} must not import {forbidden}: {bad}"


def test_no_import_cycles(graph):
    """Depth-first search over the import graph; a back edge is a cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_graph_is_read(graph):
    """The checks above mean something only if imports are found: a known edge must be there."""
    assert "common.model.lora" in graph["client.train.job"]
    assert "client.supernode" in graph["simulation.consortium"]
