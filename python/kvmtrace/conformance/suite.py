"""The outcome of one suite run (:class:`SuiteRun`): counts, exit code, JSON (schema.json), Markdown."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from rich.table import Table

from kvmtrace.conformance.model import Result, Verdict
from kvmtrace.conformance.render import results_table

SCHEMA_VERSION = 1


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

    @property
    def exit_code(self) -> int:
        """0 when every result passed or is unsupported; 1 on any fail or error; 130 if interrupted."""
        if self.interrupted:
            return 130
        return 1 if any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results) else 0

    def to_dict(self) -> dict[str, Any]:
        done = {(r.scenario, r.mode) for r in self.results}
        return {
            "schema_version": SCHEMA_VERSION,
            "host": self.host,
            "summary": {
                **self.counts(),
                "total": len(self.results),
                "elapsed_s": round(self.elapsed_s, 3),
                "interrupted": self.interrupted,
                "not_run": [{"scenario": s, "mode": m} for s, m in self.requested if (s, m) not in done],
                "notes": list(self.notes),
            },
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text (validated by schema.json); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def table(self) -> Table:
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
        """The verdicts as Markdown (for a README's host findings): a scenario x mode grid, then
        expected vs observed for every failing check."""
        modes = ("real", "protected", "long")
        grid: dict[str, dict[str, Result]] = {}
        for r in self.results:
            grid.setdefault(r.scenario, {})[r.mode] = r
        out = ["| scenario | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
        for sc, by_mode in grid.items():
            cells = []
            for m in modes:
                r = by_mode.get(m)
                cells.append("-" if r is None else
                             f"{r.verdict.value} ({sum(c.ok for c in r.checks)}/{len(r.checks)})")
            out.append(f"| {sc} | " + " | ".join(cells) + " |")
        for r in self.results:
            if r.verdict is Verdict.PASS:
                continue
            out += ["", f"**{r.scenario}** [{r.mode}]: {r.verdict.value} - {r.reason}"]
            for c in r.failed_checks:
                out.append(f"- {c.label}: expected `{c.expected.brief()}`, observed `{c.observed.brief()}`"
                           + (f" ({c.observed.note})" if c.observed.note and c.observed.note not in
                              c.observed.brief() else ""))
            out += [f"- note: {n}" for n in r.notes]
        return "\n".join(out) + "\n"


def schema() -> dict[str, Any]:
    """The JSON schema of :meth:`SuiteRun.to_json`."""
    return json.loads(files("kvmtrace.conformance").joinpath("schema.json").read_text())
