"""Static architecture rules: which layer may import what, and no import cycles.

Every ``.py`` file under ``scheduler/``, ``connectors/`` and ``workers/`` of a root directory is
parsed with :mod:`ast` (nothing is imported), and every import is collected: module level, inside
functions and methods, under ``if TYPE_CHECKING:``, inside ``try/except ImportError``, relative
imports (resolved to absolute names) and ``importlib.import_module("literal")`` /
``__import__("literal")`` calls. Standard library only, so the checker runs anywhere.

Layers, decided by a module's dotted name (the allowlists are what enforce them; the ``forbidden``
names only make the message say why):

* ``scheduler.core``: the stdlib, a few pure libraries (:data:`PURE_THIRD_PARTY`) and itself.
* ``scheduler.app``: ``scheduler.core``, ``scheduler.settings``, itself, the stdlib and the same
  pure libraries.
* ``scheduler.store``: ``scheduler.core``, ``scheduler.app``, ``scheduler.settings``, itself and
  any third-party package.
* ``connectors``: ``scheduler.core``, ``scheduler.settings``, itself and any third-party package.
* ``workers``: ``scheduler.core``, ``scheduler.app``, ``scheduler.settings``, itself and any
  third-party package.
* ``scheduler.settings``: the stdlib, the pure packages above, ``pydantic_settings`` and
  ``scheduler.core``. ``scheduler.limits`` (the limits section, without pydantic-settings, so a
  cold ``goodwill plan`` need not load it) belongs to this layer.
* ``scheduler.entrypoints``, ``scheduler.__main__`` and the ``scheduler`` package: anything.

Any other ``scheduler.X`` module is reported as outside the layers. Import cycles among the
project's modules are reported once per strongly connected component, ignoring edges that only
exist for the type checker (``if TYPE_CHECKING:``), which never run.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

__all__ = [
    "LAYERS",
    "PROJECT_PACKAGES",
    "PURE_THIRD_PARTY",
    "ImportEdge",
    "Layer",
    "ProjectImports",
    "Violation",
    "check_architecture",
    "check_layers",
    "discover_modules",
    "find_cycles",
    "format_violations",
    "layer_of",
    "scan",
]

#: Top-level packages of the project, each a directory under the root.
PROJECT_PACKAGES: tuple[str, ...] = ("scheduler", "connectors", "workers")

#: Third-party packages pure enough for the core and the application layer.
PURE_THIRD_PARTY: tuple[str, ...] = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "yaml",
)

STDLIB: frozenset[str] = frozenset(sys.stdlib_module_names)

#: The layer of everything that wires the others together; it may import anything.
UNRESTRICTED = "scheduler.entrypoints"

_VENDOR_SDKS: tuple[str, ...] = (
    "googleapiclient",
    "google",
    "google_auth_oauthlib",
    "google_auth_httplib2",
    "httplib2",
    "msal",
    "caldav",
    "requests",
    "httpx",
    "icalendar",
    "recurring_ical_events",
    "x_wr_timezone",
    "tzlocal",
)
_DATABASE: tuple[str, ...] = ("sqlalchemy", "alembic", "psycopg")
_BROKER: tuple[str, ...] = ("dramatiq", "redis", "pika")

#: Why a name is kept out of a layer, for the message. Keys are dotted-name prefixes.
WHY: Mapping[str, str] = {
    "prometheus_client": "metrics are recorded in scheduler.entrypoints",
    "cryptography": "encryption lives in scheduler.store and connectors",
    "pydantic_settings": "configuration is read at the edge and passed in",
    "scheduler.settings": "configuration is read at the edge and passed in",
    **{name: "calendar vendors are reached through connectors" for name in _VENDOR_SDKS},
    **{name: "the database lives in scheduler.store" for name in _DATABASE},
    **{name: "the message broker lives in workers" for name in _BROKER},
    "scheduler.store": "storage is reached through the ports in scheduler.core.ports",
    "scheduler.entrypoints": "entrypoints are the outermost layer: they wire the others together",
    "scheduler.app": "connectors implement the ports in scheduler.core.ports; the application "
    "uses them, not the reverse",
    "connectors": "adapters are wired in by scheduler.entrypoints",
    "workers": "workers are wired in by scheduler.entrypoints",
}

_IMPURE_THIRD_PARTY: tuple[str, ...] = (
    "prometheus_client",
    "cryptography",
    "pydantic_settings",
    *_VENDOR_SDKS,
    *_DATABASE,
    *_BROKER,
)


@dataclass(frozen=True, slots=True)
class Layer:
    """What the modules of one layer may import."""

    name: str
    #: Project layers (see :func:`layer_of`) this layer may import.
    project: tuple[str, ...]
    #: Third-party top-level packages it may import; ``None`` means any.
    third_party: tuple[str, ...] | None
    #: Names it may never import, named so the message can say why (see :data:`WHY`).
    forbidden: tuple[str, ...] = ()


LAYERS: Mapping[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            "scheduler.core",
            project=("scheduler.core",),
            third_party=PURE_THIRD_PARTY,
            forbidden=(*_IMPURE_THIRD_PARTY, "scheduler.settings"),
        ),
        Layer(
            "scheduler.app",
            project=("scheduler.core", "scheduler.app", "scheduler.settings"),
            third_party=PURE_THIRD_PARTY,
            forbidden=(
                "scheduler.store",
                "scheduler.entrypoints",
                "connectors",
                "workers",
                *_IMPURE_THIRD_PARTY,
            ),
        ),
        Layer(
            "scheduler.store",
            project=("scheduler.core", "scheduler.app", "scheduler.settings", "scheduler.store"),
            third_party=None,
            forbidden=("connectors", "workers", "scheduler.entrypoints"),
        ),
        Layer(
            "connectors",
            project=("scheduler.core", "scheduler.settings", "connectors"),
            third_party=None,
            forbidden=("scheduler.app", "scheduler.store", "scheduler.entrypoints", "workers"),
        ),
        Layer(
            "workers",
            project=("scheduler.core", "scheduler.app", "scheduler.settings", "workers"),
            third_party=None,
            forbidden=("connectors", "scheduler.store", "scheduler.entrypoints"),
        ),
        Layer(
            "scheduler.settings",
            project=("scheduler.core", "scheduler.settings"),
            third_party=(*PURE_THIRD_PARTY, "pydantic_settings"),
        ),
    )
}

_PREFIX_LAYERS: tuple[str, ...] = (
    "scheduler.core",
    "scheduler.app",
    "scheduler.store",
    "scheduler.settings",
    "scheduler.entrypoints",
    "connectors",
    "workers",
)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str | None:
    """The layer of a project module by its dotted name; ``None`` when it is outside the layers.

    >>> layer_of("scheduler.core.policy"), layer_of("connectors.google"), layer_of("scheduler")
    ('scheduler.core', 'connectors', 'scheduler.entrypoints')
    >>> layer_of("scheduler.utils") is None
    True
    """
    if module in ("scheduler", "scheduler.__main__"):
        return UNRESTRICTED
    if _under(module, "scheduler.limits"):  # the settings' section on pydantic alone
        return "scheduler.settings"
    for prefix in _PREFIX_LAYERS:
        if _under(module, prefix):
            return prefix
    return None


def _is_project(name: str) -> bool:
    return name.split(".", 1)[0] in PROJECT_PACKAGES


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    """One broken rule, printed as ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportEdge:
    """``importer`` imports ``target`` at ``path:line``."""

    importer: str
    target: str
    path: str
    line: int
    #: Only under ``if TYPE_CHECKING:``: checked against the layers, never executed.
    type_checking_only: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class ProjectImports:
    """The project's modules (dotted name -> file relative to the root) and their imports."""

    root: Path
    modules: dict[str, str] = field(default_factory=dict)
    edges: list[ImportEdge] = field(default_factory=list)
    #: Files that could not be parsed and relative imports that could not be resolved.
    problems: list[Violation] = field(default_factory=list)


def _module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover_modules(root: Path) -> dict[str, str]:
    """Dotted module name -> posix path relative to ``root``, for every project ``.py`` file."""
    found: dict[str, str] = {}
    for package in PROJECT_PACKAGES:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(root)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            found[_module_name(relative)] = relative.as_posix()
    return found


def _type_checking_test(test: ast.expr) -> bool | None:
    """``True`` for ``TYPE_CHECKING``, ``False`` for ``not TYPE_CHECKING``, else ``None``."""

    def is_flag(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "TYPE_CHECKING"
        return isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING"

    if is_flag(test):
        return True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and is_flag(test.operand):
        return False
    return None


def _dynamic_import(node: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` or ``__import__("x")``, if literal."""
    func = node.func
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        name = f"{func.value.id}.{func.attr}"
    else:
        return None
    if name not in ("__import__", "import_module", "importlib.import_module") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
        return None if first.value.startswith(".") else first.value
    return None


class _Collector:
    """Walks one module's syntax tree and records every import in it."""

    def __init__(self, module: str, path: str, is_package: bool, known: Collection[str]) -> None:
        self.module = module
        self.path = path
        self.is_package = is_package
        self.known = known
        self.edges: list[ImportEdge] = []
        self._seen: set[ImportEdge] = set()
        self.problems: list[Violation] = []

    def _add(self, target: str, node: ast.stmt | ast.expr, type_checking: bool) -> None:
        edge = ImportEdge(self.module, target, self.path, node.lineno, type_checking)
        if edge not in self._seen:  # ``from x import a, b`` is one edge to ``x``
            self._seen.add(edge)
            self.edges.append(edge)

    def _base_of(self, node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            return node.module
        package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        up = node.level - 1
        if up >= len(package):
            dots = "." * node.level
            self.problems.append(
                Violation(
                    self.path,
                    node.lineno,
                    f"relative import 'from {dots}{node.module or ''} import ...' goes above "
                    f"the top-level package of {self.module}",
                )
            )
            return None
        parts = package[: len(package) - up]
        if node.module:
            parts.extend(node.module.split("."))
        return ".".join(parts)

    def visit(self, node: ast.AST, type_checking: bool = False) -> None:
        if isinstance(node, ast.If):
            flag = _type_checking_test(node.test)
            if flag is not None:
                for statement in node.body:
                    self.visit(statement, type_checking or flag)
                for statement in node.orelse:
                    self.visit(statement, type_checking or not flag)
                return
        if isinstance(node, ast.Import):
            for alias in node.names:
                self._add(alias.name, node, type_checking)
        elif isinstance(node, ast.ImportFrom):
            base = self._base_of(node)
            if base is not None:
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    target = candidate if alias.name != "*" and candidate in self.known else base
                    self._add(target, node, type_checking)
        elif isinstance(node, ast.Call):
            dynamic = _dynamic_import(node)
            if dynamic is not None:
                self._add(dynamic, node, type_checking)
        for child in ast.iter_child_nodes(node):
            self.visit(child, type_checking)


def scan(root: Path) -> ProjectImports:
    """Parse every project module under ``root`` and collect its imports."""
    result = ProjectImports(root=root, modules=discover_modules(root))
    for module, path in result.modules.items():
        try:
            tree = ast.parse((root / path).read_bytes(), filename=path)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None) or 1
            result.problems.append(Violation(path, line, f"cannot parse: {exc}"))
            continue
        collector = _Collector(module, path, path.endswith("__init__.py"), result.modules)
        collector.visit(tree)
        result.edges.extend(collector.edges)
        result.problems.extend(collector.problems)
    return result


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _why(layer: Layer, target: str) -> str:
    for name in layer.forbidden:
        if _under(target, name):
            return f" ({layer.name} may not import {name}: {WHY.get(name, 'see the layer rules')})"
    return ""


def _layer_violation(layer: Layer, edge: ImportEdge) -> str | None:
    """The broken rule when ``layer`` may not import ``edge.target``, else ``None``."""
    target = edge.target
    top = target.split(".", 1)[0]
    if _is_project(target):
        if layer_of(target) in layer.project:
            return None
        if top == "scheduler":
            allowed = [name for name in layer.project if _under(name, "scheduler")]
            rule = f"{layer.name} may import only {_and(allowed)} from scheduler/, not {target}"
        else:
            rule = (
                f"{layer.name} may import only {_and(layer.project)} from the project, not {target}"
            )
        return rule + _why(layer, target)
    if top in STDLIB or layer.third_party is None or top in layer.third_party:
        return None
    rule = (
        f"{layer.name} may import only the stdlib and {_and(layer.third_party)} "
        f"from outside the project, not {target}"
    )
    return rule + _why(layer, target)


def check_layers(imports: ProjectImports) -> list[Violation]:
    """Every import that breaks its layer's rule, and every module outside the layers."""
    found: list[Violation] = []
    for module, path in imports.modules.items():
        if layer_of(module) is None:
            found.append(
                Violation(
                    path,
                    1,
                    f"{module} is a module outside the layers: move it into scheduler.core, "
                    "scheduler.app, scheduler.store, scheduler.settings or scheduler.entrypoints",
                )
            )
    for edge in imports.edges:
        name = layer_of(edge.importer)
        if name is None or name == UNRESTRICTED:
            continue
        message = _layer_violation(LAYERS[name], edge)
        if message is not None:
            if edge.type_checking_only:
                message += " [under TYPE_CHECKING: still a dependency]"
            found.append(Violation(edge.path, edge.line, message))
    return found


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in no particular order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_cycle(start: str, graph: Mapping[str, Sequence[str]], within: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` through ``within`` (which must contain one)."""
    previous: dict[str, str] = {}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        for child in graph[node]:
            if child not in within:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - SCC guarantees one


def find_cycles(imports: ProjectImports) -> list[Violation]:
    """One cycle per group of mutually importing modules, with the file:line of each edge."""
    first_edge: dict[tuple[str, str], ImportEdge] = {}
    for edge in imports.edges:
        runtime = not edge.type_checking_only
        if runtime and edge.target in imports.modules and edge.target != edge.importer:
            key = (edge.importer, edge.target)
            if key not in first_edge or edge.line < first_edge[key].line:
                first_edge[key] = edge
    graph: dict[str, list[str]] = {module: [] for module in imports.modules}
    for importer, target in sorted(first_edge):
        graph[importer].append(target)
    found: list[Violation] = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = _shortest_cycle(min(component), graph, set(component))
        edges = [first_edge[(a, b)] for a, b in pairwise(cycle)]
        where = "; ".join(f"{edge.where} imports {edge.target}" for edge in edges)
        found.append(
            Violation(edges[0].path, edges[0].line, f"import cycle: {' -> '.join(cycle)} ({where})")
        )
    return found


def check_architecture(root: Path) -> list[Violation]:
    """All violations under ``root``, sorted by file and line."""
    imports = scan(root)
    return sorted([*imports.problems, *check_layers(imports), *find_cycles(imports)])


def format_violations(violations: Iterable[Violation]) -> str:
    return "\n".join(str(violation) for violation in violations)
