"""Module boundaries: the import graph between top-level packages has no cycle, no role reaches into another
role's code, and every package imports alone, without side effects."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "schemas", "ingest", "workers", "api", "player", "cli", "infra")
# What each package may import. core/ and schemas/ are shared by every role; a role reaches another role only
# where it is that role's face: the API is the HTTP side of upload intake (ingest) and serves the pages
# (player); cli/ wires commands to every role. Everything else goes through core/ or schemas/.
ALLOWED = {
    "schemas": set(),
    "core": {"schemas"},
    "ingest": {"core", "schemas"},
    "workers": {"core", "schemas"},
    "player": {"core", "schemas"},
    "api": {"core", "schemas", "ingest", "player"},
    "infra": {"core", "schemas"},
    "cli": {"core", "schemas", "ingest", "workers", "api", "player", "infra"},
}


def _modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (`from a import b` counts as a.b too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def _imports(path: Path) -> set[str]:
    """Top-level packages of ours that a file imports."""
    return {name.split(".")[0] for name in _modules(path)} & set(PACKAGES)


def import_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for target in _imports(path) - {package}:
                graph[package].setdefault(target, []).append(str(path.relative_to(ROOT)))
    return graph


def _cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": []}, "b": {}, "c": {"a": []}}) is None


def test_the_import_graph_between_packages_has_no_cycle():
    graph = import_graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_no_role_imports_another_roles_code():
    wrong = {
        f"{package} -> {target}": files
        for package, targets in import_graph().items()
        for target, files in targets.items()
        if target not in ALLOWED[package]
    }
    assert not wrong, wrong


def test_no_module_of_a_package_imports_its_sibling_in_a_cycle():
    """Within cli/ too: main and the stack supervisor must not import each other."""
    cli = {p.stem: p for p in (ROOT / "cli").glob("*.py")}
    uses = {name: {m for m in cli if f"cli.{m}" in _modules(path)} for name, path in cli.items()}
    pairs = sorted((a, b) for a in uses for b in uses[a] if a < b and a in uses[b])
    assert not pairs, pairs


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_alone_with_no_side_effect(package, tmp_path):
    """Every module of the package, in a fresh interpreter, from an empty working directory: nothing may fail
    and nothing may be written (no broker folders, no data dir) just by importing."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    if not m.name.endswith('__main__') and '.migrations' not in m.name:  # alembic loads those\n"
        "        importlib.import_module(m.name)\n"
        f"assert {package}.__doc__, 'the package says what it owns'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMIFY_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
