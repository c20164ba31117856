"""The CLI package: every module in kvmtrace.cli.commands is a registered command."""

from __future__ import annotations

import importlib
import pkgutil

import typer.main

from kvmtrace.cli import app, commands
from kvmtrace.cli.app import COMMANDS


def test_every_command_module_is_registered_in_help_order() -> None:
    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert modules == set(COMMANDS)  # a module left out of COMMANDS would be a command nobody can run
    names = [importlib.import_module(f"{commands.__name__}.{m}").NAME for m in COMMANDS]
    assert list(typer.main.get_command(app).commands) == names  # type: ignore[attr-defined]
