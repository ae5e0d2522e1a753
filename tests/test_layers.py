"""The layer rule as a test: every runtime import in ``src/conveyor`` runs down the layers.

The rule (CONTRIBUTING.md, "The layer rule"), lowest first::

    model, errors, clock, _ids, _resource, _gc, metrics     the foundation
      <- wire, codecs                                        the contract every side shares
      <- store                                               ports and engines
      <- frontend, scheduler, delivery, catalog              the node's layers
      <- flow                                                flow control
      <- node, node_health, cluster, settings                the node runtime
      <- api                                                 the HTTP server
      <- cli, and the package root (the public surface)

    beside the node: execution (the worker) <- client (_client, client) <- wire, codecs, foundation

A unit is a top-level module or package of ``conveyor`` (``_client`` and ``client`` are one
unit, the client; ``cli`` and ``_cli_*`` are the CLI). A unit may import its own layer or a
lower one, never a higher one; the units of one layer may import each other, but no two units
may import each other in a cycle, whatever their layers. The worker's side imports nothing of
the node's, nor the node anything of the worker's side. An import under ``if TYPE_CHECKING:``
does not run, so it may point anywhere; an import inside a function runs, so it counts.
Package metadata read from the root (``from conveyor import __version__``) is not an import
of the public surface.

A violation that must stay for a while is listed below with the change that removes it; the
test fails on any violation not listed, and on any listed one that no longer occurs, so the
lists only shrink. Today both are empty.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

FOUNDATION = frozenset({"model", "errors", "clock", "_ids", "_resource", "_gc", "metrics"})
# ``options`` holds the option sets (subscription, endpoint, publish) that the clients, the
# worker's decorator, the CLI and the API share; it imports only ``model``.
CONTRACT = frozenset({"wire", "codecs", "options"})
# The node's side, lowest first. ``metrics`` is a leaf registry every layer writes into, so it
# sits in the foundation; ``settings`` holds the node's options (it reads the delivery layer's
# HealthPolicy), so it sits in the node runtime, and the worker imports nothing from it (what
# both servers share, the connection limits and the API's address, is in ``wire``).
LAYERS: tuple[frozenset[str], ...] = (
    FOUNDATION,
    CONTRACT,
    frozenset({"store"}),
    frozenset({"frontend", "scheduler", "delivery", "catalog"}),
    frozenset({"flow"}),
    frozenset({"node", "node_health", "cluster", "settings"}),
    frozenset({"api"}),
)
# Beside the node: what each unit of the worker's side may import (besides itself).
BESIDE: Mapping[str, frozenset[str]] = {
    "client": FOUNDATION | CONTRACT,
    "execution": FOUNDATION | CONTRACT | {"client"},
}
# On top: the CLI and the package root import from every side.
TOP = frozenset({"cli", "conveyor"})
ALIASES = {"_client": "client"}

# Imports that run against the rule today: (importing module, imported module) -> the part of
# issue 14 that removes it.
KNOWN_VIOLATIONS: Mapping[tuple[str, str], str] = {}

# Cycles between units today: the units of one cycle, sorted -> the part that removes it.
KNOWN_CYCLES: Mapping[tuple[str, ...], str] = {}


@dataclass(frozen=True, order=True)
class Import:
    """One import that runs: ``importer`` (a module) imports ``imported`` at ``line``."""

    importer: str
    imported: str
    line: int


def unit_of(module: str, units: Iterable[str]) -> str:
    """The unit a module of ``conveyor`` belongs to (``conveyor`` alone: the package root)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in units:
        return "conveyor"
    name = parts[1]
    if name.startswith("_cli_"):
        return "cli"
    return ALIASES.get(name, name)


def top_level_names(src: pathlib.Path) -> frozenset[str]:
    """The top-level modules and packages of ``conveyor`` under ``src``."""
    root = src / "conveyor"
    return frozenset(
        p.stem if p.suffix == ".py" else p.name
        for p in root.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    )


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` that runs, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    if base == "conveyor":  # a unit named from the root, or the root's own names
        return [f"conveyor.{a.name}" for a in node.names if not a.name.startswith("__")]
    return [base]


def imports_of(src: pathlib.Path) -> list[Import]:
    """Every runtime import of one ``conveyor`` module by another, in the tree under ``src``."""
    found = []
    for path in sorted((src / "conveyor").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, is_package):
                    if target == "conveyor" or target.startswith("conveyor."):
                        found.append(Import(module, target, node.lineno))
    return found


def _layer(unit: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if unit in layer), None)


def allowed(importer: str, imported: str) -> bool:
    """Whether unit ``importer`` may import unit ``imported`` at run time."""
    if importer == imported or importer in TOP:
        return True
    if importer in BESIDE:
        return imported in BESIDE[importer]
    low, high = _layer(imported), _layer(importer)
    return low is not None and high is not None and low <= high


def violations(src: pathlib.Path) -> dict[tuple[str, str], list[Import]]:
    """The imports that run against the rule, by (importing module, imported module)."""
    units = top_level_names(src)
    found: dict[tuple[str, str], list[Import]] = {}
    for imp in imports_of(src):
        if not allowed(unit_of(imp.importer, units), unit_of(imp.imported, units)):
            found.setdefault((imp.importer, imp.imported), []).append(imp)
    return found


def unit_graph(src: pathlib.Path) -> dict[str, set[str]]:
    """Which units each unit imports at run time."""
    units = top_level_names(src)
    graph: dict[str, set[str]] = {}
    for imp in imports_of(src):
        a, b = unit_of(imp.importer, units), unit_of(imp.imported, units)
        graph.setdefault(a, set())
        if a != b:
            graph[a].add(b)
    return graph


def _reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycles(graph: Mapping[str, set[str]]) -> set[tuple[str, ...]]:
    """The units that reach each other through imports, as sorted groups of more than one."""
    reach = {unit: _reachable(graph, unit) for unit in graph}
    return {
        tuple(sorted({unit} | {other for other in reach[unit] if unit in reach.get(other, ())}))
        for unit in graph
        if unit in reach[unit]
    }


def test_every_unit_has_a_place_in_the_rule() -> None:
    # Given the top-level modules and packages of conveyor
    units = {unit_of(f"conveyor.{name}", top_level_names(SRC)) for name in top_level_names(SRC)}
    # Then each sits in a layer, beside the node, or on top
    placed = set().union(*LAYERS, BESIDE, TOP)
    assert units - placed == set(), "place each new unit in tests/test_layers.py's rule"


def test_no_import_runs_against_the_layers_but_the_listed_ones() -> None:
    # Given every runtime import of src/conveyor
    found = violations(SRC)
    # Then the ones against the rule are exactly the listed ones
    new = {
        key: [f"{i.importer}:{i.line}" for i in found[key]]
        for key in found.keys() - KNOWN_VIOLATIONS.keys()
    }
    gone = sorted(KNOWN_VIOLATIONS.keys() - found.keys())
    assert new == {}, f"imports against the layer rule (see CONTRIBUTING.md): {new}"
    assert gone == [], f"fixed: remove these from KNOWN_VIOLATIONS: {gone}"


def test_no_cycle_between_units_but_the_listed_ones() -> None:
    # Given the units' import graph
    found = cycles(unit_graph(SRC))
    # Then its cycles are exactly the listed ones
    assert found - KNOWN_CYCLES.keys() == set(), "cycles between units"
    assert KNOWN_CYCLES.keys() - found == set(), "fixed: remove these from KNOWN_CYCLES"


# The checker itself, on small trees written for the purpose.


def _tree(tmp_path: pathlib.Path, files: Mapping[str, str]) -> pathlib.Path:
    for name, text in {"conveyor/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_an_import_up_the_layers_is_found_where_it_runs(tmp_path: pathlib.Path) -> None:
    # Given a store that imports the API at module level and the flow inside a function
    src = _tree(
        tmp_path,
        {
            "conveyor/store/__init__.py": "",
            "conveyor/store/sql.py": (
                "from conveyor.api import routes\ndef f() -> None:\n    from ..flow import runner\n"
            ),
            "conveyor/api/__init__.py": "",
            "conveyor/api/routes.py": "from conveyor.store import sql\n",
            "conveyor/flow/__init__.py": "",
            "conveyor/flow/runner.py": "",
        },
    )
    # When the tree is read
    found = violations(src)
    # Then both upward imports are found, and the API's import of the store is not one
    assert sorted(found) == [
        ("conveyor.store.sql", "conveyor.api"),
        ("conveyor.store.sql", "conveyor.flow"),
    ]
    assert found[("conveyor.store.sql", "conveyor.flow")][0].line == 3


def test_a_type_checking_import_and_root_metadata_are_not_violations(
    tmp_path: pathlib.Path,
) -> None:
    # Given upward imports only under TYPE_CHECKING, and the version read from the root
    src = _tree(
        tmp_path,
        {
            "conveyor/model.py": (
                "import typing\nfrom conveyor import __version__\n"
                "if typing.TYPE_CHECKING:\n    from conveyor.node import Node\n"
                "else:\n    pass\n"
            ),
            "conveyor/node.py": "from conveyor import model\n",
        },
    )
    # Then there is no violation and no cycle
    assert violations(src) == {}
    assert cycles(unit_graph(src)) == set()


def test_the_worker_side_and_the_node_side_stay_apart(tmp_path: pathlib.Path) -> None:
    # Given a worker that imports the node's settings, and a client that imports the wire
    src = _tree(
        tmp_path,
        {
            "conveyor/execution/__init__.py": "import conveyor.settings\n",
            "conveyor/settings.py": "",
            "conveyor/_client/__init__.py": "from conveyor.wire import push\n",
            "conveyor/wire/__init__.py": "",
            "conveyor/wire/push.py": "",
        },
    )
    # Then only the worker's import is against the rule
    assert list(violations(src)) == [("conveyor.execution", "conveyor.settings")]


def test_a_cycle_between_units_of_one_layer_is_found(tmp_path: pathlib.Path) -> None:
    # Given two units of one layer that import each other, through a third
    src = _tree(
        tmp_path,
        {
            "conveyor/catalog.py": "from conveyor import frontend\n",
            "conveyor/frontend/__init__.py": "from conveyor.delivery import x\n",
            "conveyor/delivery/__init__.py": "",
            "conveyor/delivery/x.py": "from conveyor.catalog import y\n",
        },
    )
    # Then the imports are allowed one by one, but the cycle is found
    assert violations(src) == {}
    assert cycles(unit_graph(src)) == {("catalog", "delivery", "frontend")}


@pytest.mark.parametrize("unit", sorted(TOP))
def test_nothing_imports_the_top(unit: str) -> None:
    # Given the CLI and the package root, which may import any unit
    # Then no other unit may import them
    assert not any(allowed(other, unit) for other in set().union(*LAYERS, BESIDE))
