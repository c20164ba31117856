"""The suite's entry points for people and CI: :func:`main` (run, print, write the reports)
and :func:`compare_reports` (what changed between two JSON reports)."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from kvmtrace.conformance.diff import compare_reports
from kvmtrace.conformance.junit import write_junit
from kvmtrace.conformance.render import VERDICT_STYLE, finding_lines, matrix_table
from kvmtrace.conformance.result import Result
from kvmtrace.conformance.runner import run_suite
from kvmtrace.conformance.suite import SuiteRun
from kvmtrace.exceptions import InvalidConfigError

__all__ = ["compare_reports", "main", "print_run"]

PathArg = str | os.PathLike[str] | None


def print_run(run: SuiteRun, console: Console, *, verbose: bool = False) -> None:
    """The matrix first, then one line per finding, the headline; with ``verbose`` every run's
    aspects and first difference."""
    console.print(matrix_table(run.results, run.findings, title=run.title()))
    console.print(f"[bold]{escape(run.headline())}[/]" + (":" if run.findings else ""))
    for line in finding_lines(run.findings):
        console.print(line)
    if verbose:
        console.print(run.table())
    c = run.counts()
    vendor = run.vendor_expectation
    console.print(
        f"{len(run.results)} runs in {run.elapsed_s:.2f} s: "
        + ", ".join(f"[{VERDICT_STYLE[k]}]{n} {k}[/]" for k, n in c.items())
        + (f"; where Intel and AMD differ, {'Intel' if vendor == 'intel' else 'AMD'}'s expectation applied"
           if vendor else "")
        + (" - [bold]interrupted[/]: partial results" if run.interrupted else "")
    )
    if not verbose and any(r.verdict.value != "pass" for r in run.results):
        console.print("[dim]--verbose shows every run's aspects and expected vs observed[/]")
    for note in run.notes:
        console.print(f"note: {note}")


def main(scenarios: list[str] | None, modes: list[str] | None, json_path: PathArg,
         console: Console | None = None, markdown_path: PathArg = None, *, verbose: bool = False,
         junit_path: PathArg = None) -> int:
    """``kvmtrace conformance``: run, print the matrix and findings, write the reports; return the exit code.

    ``scenarios`` / ``modes``: ids to select (None or empty: all). Exit codes: 0
    every selected scenario passed (or is unsupported on this host); 1 any
    ``fail`` or ``error``; 2 an unknown scenario id or mode; 130 interrupted by
    Ctrl-C (the results so far are printed and written). ``json_path``: the JSON
    report (schema.json); ``markdown_path``: the Markdown report as kept in
    docs/host-findings.md; ``junit_path``: JUnit XML, one testcase per scenario x
    mode; ``verbose``: every run's aspects and first difference.
    """
    console = console or Console()
    try:
        with console.status("running KVM debug conformance scenarios...") as status:

            def progress(r: Result) -> None:
                status.update(escape(f"{r.scenario} [{r.mode}]: {r.verdict.value}"))

            run = run_suite(scenarios or None, modes or None, on_result=progress)
    except InvalidConfigError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:  # before any scenario ran (e.g. while probing the host)
        console.print("interrupted")
        return 130
    try:
        print_run(run, console, verbose=verbose)
    finally:
        if json_path:
            run.to_json(json_path)
            console.print(f"JSON report written to [bold]{json_path}[/]")
        if markdown_path:
            Path(markdown_path).write_text(run.markdown())
            console.print(f"Markdown report written to [bold]{markdown_path}[/]")
        if junit_path:
            write_junit(run, junit_path)
            console.print(f"JUnit report written to [bold]{junit_path}[/]")
    return run.exit_code
