"""The suite's report as Markdown (as kept in docs/host-findings.md)."""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from kvmtrace.conformance.facts import MODES
from kvmtrace.conformance.findings import Finding, explaining
from kvmtrace.conformance.model import Verdict
from kvmtrace.conformance.render import finding_label
from kvmtrace.conformance.result import Result


class SuiteRunView(Protocol):
    """What the report reads of a suite run: :class:`kvmtrace.conformance.suite.SuiteRun`
    has this shape (suite.py imports this module, so the report names the shape)."""

    @property
    def results(self) -> list[Result]: ...

    @cached_property  # as SuiteRun has it: pyright does not let a cached_property satisfy a property
    def findings(self) -> list[Finding]: ...

    @property
    def vendor_expectation(self) -> str | None: ...

    def headline(self) -> str: ...


def _cell(run: SuiteRunView, r: Result | None) -> str:
    if r is None:
        return "-"
    numbers = explaining(run.findings, r.scenario, r.mode, informational=False)
    ok = sum(c.ok for c in r.checks)
    text = f"{r.verdict.value} ({ok}/{len(r.checks)})" if r.checks else r.verdict.value
    return text + ("" if not numbers else " " + ", ".join(finding_label(n) for n in numbers))


def _matrix(run: SuiteRunView) -> list[str]:
    grid: dict[str, dict[str, Result]] = {}
    for r in run.results:
        grid.setdefault(r.scenario, {})[r.mode] = r
    out = ["| scenario | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    for sc, by_mode in grid.items():
        out.append(f"| {sc} | " + " | ".join(_cell(run, by_mode.get(m)) for m in MODES) + " |")
    return out


def _findings(run: SuiteRunView) -> list[str]:
    out = ["| # | finding | aspect | runs | modes | expected | observed (first) |",
           "|---|---|---|---:|---|---|---|"]
    for n, f in enumerate(run.findings, 1):
        title = f.title + (" (informational)" if f.informational else "")
        out.append(f"| {finding_label(n)} | {title} | {f.aspect} | {len(f.runs)} | {', '.join(f.modes)} | "
                   f"`{f.expected}` | `{f.observed}` |")
    return out


def _details(run: SuiteRunView) -> list[str]:
    out: list[str] = []
    for r in run.results:
        if r.verdict is Verdict.PASS:
            continue
        out += ["", f"**{r.scenario}** [{r.mode}]: {r.verdict.value} - {r.reason}"]
        failed = [c for c in r.failed_checks if c.observed.reason != "not_reached"]
        for c in failed:
            out.append(f"- {c.label}: expected `{c.expected.brief()}`, observed `{c.observed.brief()}`"
                       + (f" ({c.observed.note})" if c.observed.note and c.observed.note not in
                          c.observed.brief() else ""))
        if len(failed) < len(r.failed_checks):
            out.append(f"- {len(r.failed_checks) - len(failed)} more checks not reached (the vCPU had stopped)")
        out += [f"- note: {n}" for n in r.notes]
    return out


def suite_markdown(run: SuiteRunView) -> str:
    """The scenario x mode matrix first (verdict, checks matched, the findings that explain it),
    then the headline and the findings, then expected vs observed for every failing check."""
    vendor = run.vendor_expectation
    out = _matrix(run) + ["", f"**{run.headline()}**", ""]
    if vendor:
        out += [f"Where Intel and AMD differ, {'Intel' if vendor == 'intel' else 'AMD'}'s expectation was applied "
                "(the host's /proc/cpuinfo vendor_id).", ""]
    out += ["Findings (each one distinct deviation; runs = the scenario x mode runs it explains):", ""]
    out += _findings(run)
    details = _details(run)
    if details:
        out += ["", "Details: every failing check."] + details
    return "\n".join(out) + "\n"
