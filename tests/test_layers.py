"""The package keeps its layers and has no import cycle (docs/architecture.md draws them).

Every module under ``rtnb/`` is parsed (``ast``, nothing is imported) and each
``import`` statement becomes an edge, lazy ones inside functions included: a
dependency taken on first use is still a dependency. The rules, from the
layering issue:

- ``core`` is pure: it imports nothing else from rtnb and no I/O (no asyncio,
  sockets, Tornado, Redis...).
- ``backplane``, ``server`` and ``client`` each build only on ``core``.
- ``bridge``, ``record``, ``notebook`` (and ``testing``) build on the client and
  the server, and so does ``server.jupyter`` (the Jupyter server extension, an
  integration: a part of its own, which may also use the bridge but never the
  notebook); ``_connect`` and ``sim`` sit above them; ``cli`` above all that;
  the package's ``__init__`` (a facade of lazy re-exports) and ``__main__`` last.
- A module imports from lower layers or its own part only, never sideways or up.
  Importing the root package itself (``from .. import __version__``) is always
  allowed: it is loaded before any of its modules anyway.
- Module-level imports form no cycle.

Dependencies that break these rules on the main branch today are listed in
``KNOWN_VIOLATIONS`` with the issue that removes them. The check fails on any
*other* violation, and each listed one is an ``xfail(strict=True)`` case that
turns into a failure once the dependency is gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rtnb"

#: part of the package -> its layer; a module may import parts of a lower layer, or its own part
LAYERS: dict[str, int] = {
    "core": 0,
    "backplane": 1,
    "server": 1,
    "client": 1,
    "bridge": 2,
    "record": 2,
    "notebook": 2,
    "server.jupyter": 2,  # the Jupyter server extension: on the server (and the bridge), never the notebook
    "testing": 2,
    "_connect": 3,
    "sim": 3,
    "cli": 4,
    "__main__": 5,
    "rtnb": 5,  # rtnb/__init__.py, the facade
}

#: modules ``core`` must never import (I/O, event loops, servers, network clients)
IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "ssl",
        "selectors",
        "threading",
        "subprocess",
        "http",
        "urllib.request",
        "tornado",
        "redis",
        "websockets",
        "aiomqtt",
        "requests",
        "httpx",
    }
)

#: (importing module, imported part) -> why this sideways import is by design
ALLOWED_SIDEWAYS: dict[tuple[str, str], str] = {
    ("rtnb.server.jupyter._hub", "bridge"): "the Jupyter extension starts the MQTT bridge its "
    "c.RtnbExtension.mqtt* settings ask for, as a hub component",
    ("rtnb.server.jupyter._settings", "bridge"): "the c.RtnbExtension.mqtt* settings become the bridge's MqttOptions",
    ("rtnb.notebook", "server.jupyter"): "the old extension point rtnb.notebook (named by the installed "
    "jupyter_server_config.d/rtnb.json and by existing configs) delegates to rtnb.server.jupyter, lazily",
}

#: (importing module, imported part) -> why it is there and what removes it
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    ("rtnb.server.hub", "backplane"): "the hub creates the default MemoryBackplane and imports the Backplane "
    "base class (and RedisBackplane for redis=...); issue 19: the hub talks to the backplane through small "
    "core protocols (a HubLink), the default is chosen by the caller",
    ("rtnb.server._hub_state", "backplane"): "the hub's shared fields name the Backplane base class (for the type "
    "checker only); same fix as the hub's: a core protocol",
    ("rtnb.server.runner", "backplane"): "HubServer builds a backplane from its options; same fix as the hub's",
    ("rtnb.notebook.embedded", "bridge"): "the embedded hub starts an MQTT bridge beside itself (a sideways "
    "dependency in layer 2); the bridge could be attached by the caller, or layered under the notebook",
    ("rtnb.notebook._view", "_connect"): "views call rtnb.connect() (layer 3) to find their hub, and "
    "rtnb._connect imports the notebook's hub discovery: a cycle between notebook and _connect",
}


@dataclass(frozen=True)
class Edge:
    """One import statement: ``importer`` (a module) imports ``target`` (a module)."""

    importer: str
    target: str
    line: int
    at_module_level: bool  # runs on import (not inside a function or ``if TYPE_CHECKING``)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def part(module: str) -> str:
    """``rtnb.server.hub`` -> ``server``; ``rtnb.sim`` -> ``sim``; ``rtnb`` -> ``rtnb``;
    ``rtnb.server.jupyter._app`` -> ``server.jupyter`` (a two-level part, see LAYERS)."""
    pieces = module.split(".")
    if len(pieces) > 2 and ".".join(pieces[1:3]) in LAYERS:
        return ".".join(pieces[1:3])
    return pieces[1] if len(pieces) > 1 else pieces[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], at_module_level: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, nested ones too, with whether it runs when the module is imported."""
    for statement in body:
        yield statement, at_module_level
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _statements(statement.body, False)
        elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
            yield from _statements(statement.body, False)
            yield from _statements(statement.orelse, at_module_level)
        else:
            for name in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(statement, name, None)
                if isinstance(children, list):
                    nested = [child for child in children if isinstance(child, ast.stmt)]
                    handlers = [child for child in children if isinstance(child, ast.ExceptHandler)]
                    yield from _statements(nested, at_module_level)
                    for handler in handlers:
                        yield from _statements(handler.body, at_module_level)


def imports_of(module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported name, line, at module level) for every import in ``module``, rtnb or not."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for statement, eager in _statements(tree.body, True):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                yield alias.name, statement.lineno, eager
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                base = package.split(".")
                base = base[: len(base) - (statement.level - 1)]
                source = ".".join([*base, statement.module] if statement.module else base)
            else:
                source = statement.module or ""
            for alias in statement.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in modules() else source), statement.lineno, eager


@cache
def edges() -> tuple[Edge, ...]:
    found = []
    for module in modules():
        for target, line, eager in imports_of(module):
            if target == "rtnb" or target.startswith("rtnb."):
                found.append(Edge(module, target, line, eager))
    return tuple(found)


def violations() -> dict[tuple[str, str], list[Edge]]:
    """(importing module, imported part) -> the imports that break the layer rule."""
    broken: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges():
        source, target = part(edge.importer), part(edge.target)
        if edge.target == "rtnb" or source == target or (edge.importer, target) in ALLOWED_SIDEWAYS:
            continue
        if LAYERS[target] >= LAYERS[source]:
            broken.setdefault((edge.importer, target), []).append(edge)
    return broken


def describe(found: dict[tuple[str, str], list[Edge]]) -> str:
    return "\n".join(
        f"{importer} (layer {LAYERS[part(importer)]}) imports {target} (layer {LAYERS[target]}): "
        + ", ".join(f"{edge.target} at line {edge.line}" for edge in edges_)
        for (importer, target), edges_ in sorted(found.items())
    )


def test_every_part_of_the_package_has_a_layer() -> None:
    assert {part(module) for module in modules()} <= set(LAYERS), "add the new part to LAYERS and the docs"


def test_the_parser_sees_lazy_and_relative_imports() -> None:
    """The checks below are only as good as this parser: it must see every kind of import."""
    found = {(edge.importer, edge.target, edge.at_module_level) for edge in edges()}
    assert ("rtnb.client.sse", "rtnb.core.errors", True) in found  # from ..core.errors import X
    assert ("rtnb._connect", "rtnb.notebook.discovery", False) in found  # from .notebook import discovery, lazily
    assert ("rtnb.cli.sim", "rtnb.sim", False) in found  # from .. import sim, in a function
    assert ("rtnb.__main__", "rtnb.cli", True) in found


def test_the_jupyter_extension_is_a_part_of_its_own() -> None:
    """``server.jupyter`` sits above the server: the server may not import it, it may not import the notebook."""
    assert part("rtnb.server.jupyter._app") == "server.jupyter"
    assert part("rtnb.server.jupyter") == "server.jupyter"
    assert part("rtnb.server.hub") == "server"
    found = {(edge.importer, edge.target) for edge in edges()}
    assert ("rtnb.server.jupyter._hub", "rtnb.server.app") in found  # it does build on the server
    assert not [edge for edge in edges() if part(edge.importer) == "server.jupyter" and part(edge.target) == "notebook"]


def test_every_allowed_sideways_import_exists() -> None:
    """An allowance for an import that is gone is stale: drop it from ALLOWED_SIDEWAYS."""
    found = {(edge.importer, part(edge.target)) for edge in edges()}
    assert set(ALLOWED_SIDEWAYS) <= found, set(ALLOWED_SIDEWAYS) - found


def test_core_is_pure() -> None:
    """The core imports no other part of rtnb and nothing that does I/O, lazily or not."""
    impure = []
    for module in modules():
        if part(module) != "core":
            continue
        for target, line, _eager in imports_of(module):
            top = target.split(".")[0]
            if (target.startswith("rtnb.") and part(target) != "core") or top in IO_MODULES or target in IO_MODULES:
                impure.append(f"{module} imports {target} at line {line}")
    assert not impure, "\n".join(impure)


def test_no_import_breaks_the_layers_beyond_the_known_list() -> None:
    new = {key: found for key, found in violations().items() if key not in KNOWN_VIOLATIONS}
    assert not new, "imports against the layers (docs/architecture.md):\n" + describe(new)


@pytest.mark.parametrize(
    "violation",
    [
        pytest.param(key, id=f"{key[0]}->{key[1]}", marks=pytest.mark.xfail(strict=True, reason=reason))
        for key, reason in KNOWN_VIOLATIONS.items()
    ],
)
def test_known_violation_is_gone(violation: tuple[str, str]) -> None:
    """Fails (xfail) while the violation exists; an XPASS means it was fixed: drop it from KNOWN_VIOLATIONS."""
    found = violations()
    assert violation not in found, describe({violation: found[violation]})


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    """Module-level imports form no cycle (lazy imports inside functions are how cycles get hidden,
    so they are checked too, at the level of parts, by the layer rule above)."""
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for edge in edges():
        if edge.at_module_level and edge.target in graph and edge.target != edge.importer:
            # a package's __init__ is loaded before its modules anyway; importing it is not a cycle edge
            if edge.importer.startswith(edge.target + "."):
                continue
            graph[edge.importer].add(edge.target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)
