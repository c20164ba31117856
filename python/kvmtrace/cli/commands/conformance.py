"""``kvmtrace conformance``: the guest-debug conformance scenarios (kvmtrace.conformance)."""

from __future__ import annotations

from pathlib import Path

import typer

from kvmtrace.cli.args import parse_mode
from kvmtrace.cli.output import console, require_module

NAME = "conformance"


def command(
    scenario: list[str] | None = typer.Option(None, "--scenario", help="Run only this scenario (repeatable)."),
    mode: list[str] | None = typer.Option(None, "--mode", help="Run only in this mode: real, protected, long "
                                                               "(repeatable)."),
    json_path: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the report as JSON."),
    markdown_path: Path | None = typer.Option(None, "--markdown", metavar="FILE",
                                              help="Also write the report as Markdown (verdict table + every difference)."),
) -> None:
    """Run the KVM guest-debug conformance scenarios and report PASS/FAIL against the x86 architecture."""
    modes = [parse_mode(m) for m in mode or []]
    conf = require_module("kvmtrace.conformance", "main")
    raise typer.Exit(int(conf.main(list(scenario or []), modes, json_path, console, markdown_path) or 0))
