"""Rendering results for a terminal: the scenario x mode matrix, the findings, the details."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from kvmtrace.conformance.facts import MODES
from kvmtrace.conformance.findings import Finding, explaining
from kvmtrace.conformance.model import Verdict
from kvmtrace.conformance.result import Result

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "unsupported": "yellow", "error": "bold magenta"}


ASPECT_STYLE = {"pass": "green", "fail": "bold red", "info": "cyan", "n/a": "dim"}


def finding_label(number: int) -> str:
    return f"F{number}"


def matrix_table(results: list[Result], findings: list[Finding], title: str | None = None) -> Table:
    """One row per scenario, one column per mode: the verdict and the (architectural) findings that explain it."""
    table = Table(title=title)
    table.add_column("scenario", no_wrap=True)
    for mode in MODES:
        table.add_column(mode, no_wrap=True)
    grid: dict[str, dict[str, Result]] = {}
    for r in results:
        grid.setdefault(r.scenario, {})[r.mode] = r
    for scenario, by_mode in grid.items():
        cells: list[Text | str] = []
        for mode in MODES:
            run = by_mode.get(mode)
            if run is None:
                cells.append(Text("-", style="dim"))
                continue
            cell = Text(run.verdict.value, style=VERDICT_STYLE[run.verdict.value])
            numbers = explaining(findings, scenario, mode, informational=False)
            if numbers:
                cell.append(" " + " ".join(finding_label(n) for n in numbers))
            cells.append(cell)
        table.add_row(scenario, *cells)
    return table


def finding_lines(findings: list[Finding]) -> list[Text]:
    """``F1 [events] data breakpoints never fire - explains 9 runs``: one line per finding."""
    out = []
    for n, f in enumerate(findings, 1):
        runs = len(f.runs)
        verb = "seen in" if f.informational else "explains"
        line = Text(f"{finding_label(n):>4} ", style="bold")
        line.append(f"[{f.aspect}] ", style="cyan" if f.informational else "red")
        line.append(f.title)
        modes = "" if len(f.modes) == 3 else f" ({', '.join(f.modes)})"
        line.append(f" - {verb} {runs} run{'s' if runs != 1 else ''}{modes}"
                    + (", informational" if f.informational else ""), style="dim")
        out.append(line)
    return out


def aspects_text(r: Result) -> Text:
    out = Text()
    for a, state in r.aspects.items():
        if state != "n/a":
            out.append(f"{a}={state} ", style=ASPECT_STYLE[state])
    return out


def _observed_cell(r: Result) -> Text:
    d = r.decisive
    ok = sum(c.ok for c in r.checks)
    if r.verdict is Verdict.PASS:
        return Text(f"{ok}/{len(r.checks)} checks matched", style="green")
    if r.verdict in (Verdict.UNSUPPORTED, Verdict.ERROR) or d is None:
        return Text("\n".join([r.reason, *r.notes[:1]]))
    lines = [f"{d.label} [{ok}/{len(r.checks)} checks ok]",
             f"expected: {d.expected.brief()}",
             f"observed: {d.observed.brief()}"]
    if d.observed.note and d.observed.note != d.expected.note and not (
            d.observed.pc is not None and d.observed.note in lines[2]):
        lines.append(f"          {d.observed.note}")
    return Text("\n".join(lines))


def results_table(results: list[Result], title: str | None = None) -> Table:
    """Per run: the verdict, its aspects and its first difference (the ``--verbose`` detail)."""
    table = Table(title=title, show_lines=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("aspects / expected -> observed (first difference) / why")
    for r in results:
        cell = aspects_text(r)
        cell.append("\n")
        cell.append_text(_observed_cell(r))
        table.add_row(r.scenario, r.mode, Text(r.verdict.value, style=VERDICT_STYLE[r.verdict.value]), cell)
    return table


__all__ = ["finding_lines", "matrix_table", "results_table"]
