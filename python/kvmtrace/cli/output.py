"""Where the CLI writes: the stdout/stderr consoles, one-line errors, usage problems.

Every command module and the app share these, so this module imports nothing else
of the CLI.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit codes: success; a run failed (guest fault, KVM or sink error, failed analysis
rules); a usage error (bad arguments, missing or unreadable files); Ctrl-C."""

WIDTH_WITHOUT_TERMINAL = 160
"""Columns for pipes and files: whole tables, not 80 columns of ellipses."""


class UsageProblem(Exception):
    """A usage error found by a command (exit code 2)."""


def widen_when_piped() -> None:
    for c in (console, err_console):
        if not c.is_terminal and "COLUMNS" not in os.environ:
            c.width = WIDTH_WITHOUT_TERMINAL


def print_error(msg: str) -> None:
    """``error: msg`` on stderr, never wrapped (callers and tests read it as one line)."""
    err_console.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True)


def print_warning(msg: str) -> None:
    err_console.print(Text(f"warning: {msg}", style="yellow"), soft_wrap=True)


def fail(msg: str, code: int = 1) -> NoReturn:
    """Print ``msg`` as the error and end the command with ``code``."""
    print_error(msg)
    raise typer.Exit(code)


def usage(msg: str) -> NoReturn:
    """End the command as a usage error (exit code 2) with ``msg``."""
    raise UsageProblem(msg)


def require_module(module: str, attr: str) -> ModuleType:
    """Import a module another part of kvmtrace provides, or fail saying it is absent."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        fail(f"{module} is not available in this install")
    if not callable(getattr(mod, attr, None)):
        fail(f"{module} has no {attr}() in this install")
    return mod
