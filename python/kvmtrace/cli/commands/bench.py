"""``kvmtrace bench``: kvmtrace against a C KVM_RUN loop, a Python ioctl loop and Unicorn."""

from __future__ import annotations

import typer

from kvmtrace.cli.output import console, require_module

NAME = "bench"


def command(
    quick: bool = typer.Option(False, "--quick", "-q", help="Fewer events and rounds (about 15 s instead of 100 s)."),
) -> None:
    """Measure events/s against a C KVM_RUN loop, a Python ioctl loop and Unicorn; print the table."""
    b = require_module("kvmtrace.bench", "main")
    raise typer.Exit(int(b.main(console, quick=quick) or 0))
