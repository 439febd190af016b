"""The kit's layering: no import cycle inside ``labkit/``, and every module imports alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labs import REPO_ROOT

KIT = REPO_ROOT / "labkit"


def kit_modules() -> list[str]:
    return sorted(f"labkit.{p.stem}" for p in KIT.glob("*.py") if p.stem not in ("__init__", "__main__"))


def imports_of(path: Path) -> set[str]:
    """Every labkit module this file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "labkit":
                found |= {f"labkit.{a.name}" for a in node.names}
            elif node.module.startswith("labkit."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("labkit.")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = set(kit_modules())
    return {m: imports_of(KIT / f"{m.split('.')[1]}.py") & modules for m in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_labkit_has_no_import_cycle_even_through_imports_inside_functions():
    graph = import_graph()
    assert len(graph) >= 15
    assert find_cycle(graph) is None


def test_the_lab_declaration_knows_nothing_of_how_it_is_run():
    assert import_graph()["labkit.lab"] <= {"labkit.params", "labkit.plotting", "labkit.session"}
    assert not ({"labkit.runner", "labkit.cli"} & imports_of(KIT / "lab.py"))


def test_every_kit_module_imports_alone_in_a_fresh_interpreter():
    def alone(module: str) -> tuple[str, int, str]:
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                              text=True, cwd=REPO_ROOT, timeout=60)
        return module, proc.returncode, proc.stderr[-400:]

    with ThreadPoolExecutor(4) as pool:
        failed = [r for r in pool.map(alone, kit_modules()) if r[1] != 0]
    assert not failed, failed
