"""The CLI package's imports run one way: command modules import the shared helpers
(``conveyor.cli.common``), never the reverse, and ``application`` assembles them (issue 14:
the former ``cli.py`` and ``_cli_*.py`` imported each other in a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import conveyor.cli

_PACKAGE = Path(conveyor.cli.__file__).parent


def _cli_imports(path: Path) -> set[str]:
    """The ``conveyor.cli`` modules a file imports, at any depth (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("conveyor.cli"))
    modules = {f"conveyor.cli.{p.stem}" for p in _PACKAGE.glob("*.py")} | {"conveyor.cli"}
    return {n if n in modules else n.rpartition(".")[0] for n in found} & modules


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in _PACKAGE.glob("*.py"):
        name = "conveyor.cli" if path.stem == "__init__" else f"conveyor.cli.{path.stem}"
        graph[name] = _cli_imports(path) - {name}
    return graph


def test_the_shared_helpers_import_no_command_module() -> None:
    graph = _graph()
    assert graph["conveyor.cli.common"] == set()
    assert graph["conveyor.cli.connections"] == set()


def test_no_module_imports_the_package_or_the_application_back() -> None:
    graph = _graph()
    for name, imports in graph.items():
        if name not in {"conveyor.cli", "conveyor.cli.application"}:
            assert not imports & {"conveyor.cli", "conveyor.cli.application"}, name


def test_the_imports_form_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for imported in graph.get(name, set()):
            visit(imported, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
