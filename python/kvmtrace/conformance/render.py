"""Rendering results for a terminal: the rich table of verdicts."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from kvmtrace.conformance.model import Result, Verdict

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "unsupported": "yellow", "error": "bold magenta"}


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
    table = Table(title=title, show_lines=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("expected -> observed (first difference) / why")
    for r in results:
        table.add_row(r.scenario, r.mode, Text(r.verdict.value, style=VERDICT_STYLE[r.verdict.value]),
                      _observed_cell(r))
    return table
