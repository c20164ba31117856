"""The outcome of one suite run (:class:`SuiteRun`): counts, findings, exit code, JSON (schema.json)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

from rich.table import Table

from kvmtrace.conformance.findings import Finding, find_findings
from kvmtrace.conformance.markdown import suite_markdown
from kvmtrace.conformance.model import Verdict
from kvmtrace.conformance.render import results_table
from kvmtrace.conformance.result import Result

SCHEMA_VERSION = 2


@dataclass
class SuiteRun:
    """The outcome of one suite run."""

    host: dict[str, Any]
    results: list[Result]
    requested: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for r in self.results:
            out[r.verdict.value] += 1
        return out

    @cached_property
    def findings(self) -> list[Finding]:
        """The distinct deviations (architectural first), computed once: results are final by then."""
        return find_findings(self.results)

    @property
    def deviations(self) -> list[Finding]:
        return [f for f in self.findings if not f.informational]

    def dr6_figure(self) -> tuple[int, int]:
        """(correct, checked): delivered debug exits whose DR6 was compared, and how many matched."""
        checks = [c for r in self.results for c in r.checks if c.dr6_checked]
        return sum(c.dr6_correct for c in checks), len(checks)

    @property
    def vendor_expectation(self) -> str | None:
        """Whose expectations (``intel``/``amd``) the vendor-dependent scenarios applied."""
        return next((r.vendor_expectation for r in self.results if r.vendor_expectation), None)

    def headline(self) -> str:
        """``8 deviations found; DR6 correct in 412 of 412 delivered exits`` (+ informational findings)."""
        n = len(self.deviations)
        info = len(self.findings) - n
        correct, checked = self.dr6_figure()
        text = (f"{n} deviation{'s' if n != 1 else ''} found; DR6 correct in {correct} of {checked} "
                f"delivered exit{'s' if checked != 1 else ''}")
        return text + (f" (+{info} informational)" if info else "")

    @property
    def exit_code(self) -> int:
        """0 when every result passed or is unsupported; 1 on any fail or error; 130 if interrupted."""
        if self.interrupted:
            return 130
        return 1 if any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results) else 0

    def summary(self) -> dict[str, Any]:
        done = {(r.scenario, r.mode) for r in self.results}
        correct, checked = self.dr6_figure()
        return {
            "runs": len(self.results),
            **self.counts(),
            "findings": len(self.deviations),
            "informational_findings": len(self.findings) - len(self.deviations),
            "dr6": {"exits_checked": checked, "correct": correct},
            "headline": self.headline(),
            "vendor_expectation": self.vendor_expectation,
            "total": len(self.results),
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "not_run": [{"scenario": s, "mode": m} for s, m in self.requested if (s, m) not in done],
            "notes": list(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "host": self.host,
            "summary": self.summary(),
            "findings": [f.to_dict() for f in self.findings],
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text (validated by schema.json); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def table(self) -> Table:
        """Every run's verdict and its first difference (the ``--verbose`` detail)."""
        return results_table(self.results, title=self.title())

    def title(self) -> str:
        c = self.counts()
        cpu = self.host.get("cpu", {})
        mods = ", ".join(self.host.get("kvm", {}).get("vendor_modules") or [])
        parts = ", ".join(f"{n} {k}" for k, n in c.items() if n)
        return (f"KVM debug conformance: {parts or 'no results'} - kernel {self.host.get('kernel')}"
                + (f" ({mods})" if mods else "") + f", {cpu.get('vendor')} {cpu.get('model')}"
                + (" (interrupted)" if self.interrupted else ""))

    def markdown(self) -> str:
        """The report as Markdown (docs/host-findings.md): headline, matrix, findings, differences."""
        return suite_markdown(self)


def schema() -> dict[str, Any]:
    """The JSON schema of :meth:`SuiteRun.to_json`."""
    return json.loads(files("kvmtrace.conformance").joinpath("schema.json").read_text())
