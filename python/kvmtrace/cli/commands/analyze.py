"""``kvmtrace analyze``: check a stored trace against the x86 architecture."""

from __future__ import annotations

from pathlib import Path

import typer

from kvmtrace.cli.args import read_stored_trace
from kvmtrace.cli.output import EXIT_FAILED, EXIT_OK, console, require_module

NAME = "analyze"


def command(
    file: Path = typer.Argument(..., help="A stored trace (Parquet file or dataset directory)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    run: str | None = typer.Option(None, "--run", help="Run id in a directory of run=<id> datasets."),
) -> None:
    """Check a stored trace's DR6/DR7 against the x86 architecture (exit code 1 if a non-informational rule fails)."""
    t = read_stored_trace(file, run)
    report = require_module("kvmtrace.analysis", "analyze").analyze(t)
    if as_json:
        typer.echo(report.to_json())
    else:
        console.print(report.to_rich_table())
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)
