"""The suite's CLI entry point :func:`main`: run, print, write the reports."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from kvmtrace.conformance.model import Result
from kvmtrace.conformance.render import VERDICT_STYLE
from kvmtrace.conformance.runner import run_suite
from kvmtrace.exceptions import InvalidConfigError


def main(scenarios: list[str] | None, modes: list[str] | None, json_path: str | os.PathLike[str] | None,
         console: Console | None = None, markdown_path: str | os.PathLike[str] | None = None) -> int:
    """``kvmtrace conformance``: run, print the table, write JSON; return the exit code.

    ``scenarios`` / ``modes``: ids to select (None or empty: all). Exit codes: 0
    every selected scenario passed (or is unsupported on this host); 1 any
    ``fail`` or ``error``; 2 an unknown scenario id or mode; 130 interrupted by
    Ctrl-C (the results so far are printed, and written to ``json_path``).
    ``markdown_path`` also writes the Markdown report (verdict table and every
    expected/observed difference), as kept in docs/host-findings.md.
    """
    console = console or Console()
    try:
        with console.status("running KVM debug conformance scenarios...") as status:

            def progress(r: Result) -> None:
                status.update(f"{r.scenario} [{r.mode}]: {r.verdict.value}")

            run = run_suite(scenarios or None, modes or None, on_result=progress)
    except InvalidConfigError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:  # before any scenario ran (e.g. while probing the host)
        console.print("interrupted")
        return 130
    try:
        console.print(run.table())
        c = run.counts()
        console.print(
            f"{len(run.results)} results in {run.elapsed_s:.2f} s: "
            + ", ".join(f"[{VERDICT_STYLE[k]}]{n} {k}[/]" for k, n in c.items())
            + (" - [bold]interrupted[/]: partial results" if run.interrupted else "")
        )
        for note in run.notes:
            console.print(f"note: {note}")
    finally:
        if json_path:
            run.to_json(json_path)
            console.print(f"JSON report written to [bold]{json_path}[/]")
        if markdown_path:
            Path(markdown_path).write_text(run.markdown() + "\n")
            console.print(f"Markdown report written to [bold]{markdown_path}[/]")
    return run.exit_code
