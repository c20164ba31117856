"""``kvmtrace conformance``: the guest-debug conformance scenarios (kvmtrace.conformance)."""

from __future__ import annotations

from pathlib import Path

import typer

from kvmtrace.cli.args import parse_mode
from kvmtrace.cli.output import console, require_module, usage

NAME = "conformance"


def command(
    scenario: list[str] | None = typer.Option(None, "--scenario", help="Run only this scenario (repeatable)."),
    mode: list[str] | None = typer.Option(None, "--mode", help="Run only in this mode: real, protected, long "
                                                               "(repeatable)."),
    json_path: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the report as JSON."),
    markdown_path: Path | None = typer.Option(None, "--markdown", metavar="FILE",
                                              help="Also write the report as Markdown (matrix, findings, every difference)."),
    junit_path: Path | None = typer.Option(None, "--junit", metavar="FILE",
                                           help="Also write JUnit XML (one testcase per scenario x mode)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every run's aspects and expected vs observed."),
    compare: tuple[Path, Path] | None = typer.Option(None, "--compare", metavar="A.json B.json",
                                                     help="Print what changed between two JSON reports (no run); "
                                                          "exit 0 when nothing changed, 1 otherwise."),
) -> None:
    """Run the KVM guest-debug conformance scenarios and report, per aspect, against the x86 architecture."""
    conf = require_module("kvmtrace.conformance", "main")
    if compare is not None:
        if scenario or mode or json_path or markdown_path or junit_path:
            usage("--compare reads two reports: it takes no --scenario, --mode, --json, --markdown or --junit")
        raise typer.Exit(int(conf.compare_reports(compare[0], compare[1], console)))
    modes = [parse_mode(m) for m in mode or []]
    code = conf.main(list(scenario or []), modes, json_path, console, markdown_path, verbose=verbose,
                     junit_path=junit_path)
    raise typer.Exit(int(code or 0))
