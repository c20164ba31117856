"""The package's layout rules, read from the source with ``ast`` (no import, no KVM).

- No import cycle among kvmtrace modules. Every import statement counts, wherever it
  stands: at the top, inside a function, under ``if TYPE_CHECKING:`` (an import moved
  out of the way of a cycle is still a cycle). ``from kvmtrace.x import y`` is an edge
  to ``kvmtrace.x`` and, when ``kvmtrace/x/y`` is a module, to ``kvmtrace.x.y``; a
  package's ``__init__`` is a node of its own (named after the package).
- No module over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES lines
  (from its ``def`` line to its last line, nested functions included).

The allowlists below name offenders in files this change could not edit; each entry
must still be an offender, so fixing one fails the test until its entry is removed.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "kvmtrace"
ROOT = Path(__file__).resolve().parent.parent / "python" / PACKAGE
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

#: Import edges (importer, imported) that close a cycle, each with the reason it stays.
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}
#: Modules over MAX_MODULE_LINES, by path under python/kvmtrace.
ALLOWED_LONG_MODULES: dict[str, str] = {}
#: Functions over MAX_FUNCTION_LINES, as "path:qualified.name".
ALLOWED_LONG_FUNCTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. kvmtrace.oracle.emit; a package's __init__ is the package's name
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path)
        modules[name] = Module(name, path, path.name == "__init__.py", ast.parse(text, str(path)),
                               len(text.splitlines()))
    return modules


MODULES = load_modules()


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: Module) -> set[str]:
    """The kvmtrace modules that ``module`` imports, by every import statement in it."""
    found: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {name for name in found if name in MODULES and name != module.name}


def import_graph(skip: frozenset[tuple[str, str]] = frozenset()) -> dict[str, set[str]]:
    return {name: {t for t in imported_modules(m) if (name, t) not in skip} for name, m in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module, for the failure message."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return component


def functions(module: Module) -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function and method in the module."""
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(module.tree, "")


def long_functions() -> dict[str, int]:
    return {f"{m.rel}:{name}": n for m in MODULES.values() for name, n in functions(m) if n > MAX_FUNCTION_LINES}


# The rules ----------------------------------------------------------------------------


def test_no_import_cycle() -> None:
    graph = import_graph(frozenset(ALLOWED_CYCLE_EDGES))
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle_path(graph, c)) for c in found)


def test_allowed_cycle_edges_still_close_a_cycle() -> None:
    """An allowlisted edge that is gone, or no longer closes a cycle, must leave the list."""
    full = import_graph()
    component = {m: frozenset(c) for c in cycles(full) for m in c}
    stale = [(a, b) for a, b in ALLOWED_CYCLE_EDGES if b not in full[a] or b not in component.get(a, ())]
    assert not stale, f"remove from ALLOWED_CYCLE_EDGES: {stale}"


def test_modules_are_at_most_400_lines() -> None:
    long = {m.rel: m.lines for m in MODULES.values() if m.lines > MAX_MODULE_LINES}
    assert set(long) - set(ALLOWED_LONG_MODULES) == set(), f"modules over {MAX_MODULE_LINES} lines: {long}"
    stale = set(ALLOWED_LONG_MODULES) - set(long)
    assert not stale, f"remove from ALLOWED_LONG_MODULES: {sorted(stale)}"


def test_functions_are_at_most_80_lines() -> None:
    long = long_functions()
    assert set(long) - set(ALLOWED_LONG_FUNCTIONS) == set(), f"functions over {MAX_FUNCTION_LINES} lines: {long}"
    stale = set(ALLOWED_LONG_FUNCTIONS) - set(long)
    assert not stale, f"remove from ALLOWED_LONG_FUNCTIONS: {sorted(stale)}"


def test_rust_modules_are_at_most_400_lines() -> None:
    """The Rust core keeps one concern per file too (unit-test files included)."""
    rust = ROOT.parent.parent / "rust"
    long = {str(f.relative_to(rust)): n for f in sorted(rust.rglob("*.rs"))
            if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"Rust files over {MAX_MODULE_LINES} lines: {long}"


# The checker itself, on synthetic sources -----------------------------------------------


def _fake(name: str, source: str, is_package: bool = False) -> Module:
    path = ROOT / (name.removeprefix(f"{PACKAGE}.").replace(".", "/") + ("/__init__.py" if is_package else ".py"))
    return Module(name, path, is_package, ast.parse(source), len(source.splitlines()))


Install = Callable[..., None]


@pytest.fixture
def fake_package(monkeypatch: pytest.MonkeyPatch) -> Install:
    """Replace the parsed package by synthetic modules for one test."""

    def install(*modules: Module) -> None:
        monkeypatch.setattr(f"{__name__}.MODULES", {m.name: m for m in modules})

    return install


def test_imports_inside_functions_and_type_checking_count(fake_package: Install) -> None:
    fake_package(
        _fake(PACKAGE, "", is_package=True),
        _fake(f"{PACKAGE}.a", "def f():\n    from kvmtrace.b import g\n"),
        _fake(f"{PACKAGE}.b", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kvmtrace.a\n"),
    )
    assert cycles(import_graph()) == [[f"{PACKAGE}.a", f"{PACKAGE}.b"]]


def test_from_package_import_module_is_an_edge_to_both(fake_package: Install) -> None:
    pkg = f"{PACKAGE}.sub"
    fake_package(
        _fake(PACKAGE, "", is_package=True),
        _fake(pkg, "from . import leaf\n", is_package=True),
        _fake(f"{pkg}.leaf", "from kvmtrace import sub\nfrom ..sub.other import x\n"),
        _fake(f"{pkg}.other", "x = 1\n"),
    )
    graph = import_graph()
    assert graph[pkg] == {f"{pkg}.leaf"}
    assert graph[f"{pkg}.leaf"] == {PACKAGE, pkg, f"{pkg}.other"}  # x, a name in a module, is no module
    assert cycles(graph) == [[pkg, f"{pkg}.leaf"]]


def test_function_lengths_count_nested_functions_and_methods(fake_package: Install) -> None:
    body = "\n".join(f"            x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    fake_package(_fake(f"{PACKAGE}.long", f"class C:\n    def m(self):\n        def inner():\n{body}\n"))
    assert set(long_functions()) == {"long.py:C.m", "long.py:C.m.inner"}
