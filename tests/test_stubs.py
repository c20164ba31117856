"""The hand-written _core.pyi mirrors the Rust module: same names, same members."""

from __future__ import annotations

import ast
from pathlib import Path

import kvmtrace
from kvmtrace import _core

STUB = Path(kvmtrace.__file__).with_name("_core.pyi")


def stub_tree() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text())
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {
                n.name if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else n.target.id  # type: ignore[union-attr]
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return names, members


def test_every_module_name_is_in_the_stub() -> None:
    names, _ = stub_tree()
    runtime = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    assert runtime - names == set()


def test_class_members_match() -> None:
    _, members = stub_tree()
    for cls in ("Machine", "Trace", "GuestDebug", "HwBreakpoint", "Exit"):
        obj = getattr(_core, cls)
        runtime = {n for n in dir(obj) if not n.startswith("_")}
        stub = {n for n in members[cls] if not n.startswith("_")}
        assert runtime == stub, f"{cls}: only at runtime {runtime - stub}, only in stub {stub - runtime}"
