"""Layers point down: no module of the package imports, at the top or inside a function, a module
that imports it back (imports only type checkers read are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import llm_economist

ROOT = Path(llm_economist.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules this module's imports name (a package's module, else the package)."""
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else [])) if node.level else node.module
            targets = [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a module's own package is no edge
                found.add(target)
    return found


def test_the_package_has_no_import_cycle():
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in files.items():
        graph.add_node(name)
        for target in imported(ast.parse(path.read_text()), name, path.name == "__init__.py", set(files)):
            graph.add_edge(name, target)
    assert len(files) > 50
    assert graph.has_edge("llm_economist.planner_factory", "llm_economist.factory")  # the graph does see imports
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []
