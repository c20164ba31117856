"""The analysis result: one :class:`RuleResult` per rule, their offending events
(:class:`Violation`) and the :class:`Report` that prints them as text, JSON or a
rich table.

A rule is *informational* when the architecture or the KVM API does not promise
what it checks (``dr7_echo``): it is evaluated, shown and counted, its status is
``"info"`` when it has violations, and it never makes a report fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Rich styles of the rule statuses (shared with the CLI's verdict table).
STATUS_STYLES = {"pass": "green", "fail": "bold red", "info": "cyan", "skipped": "yellow"}


def hex_or_dash(v: int | None) -> str:
    return "-" if v is None else f"{int(v):#x}"


@dataclass
class Violation:
    """One offending event.  ``expected``/``observed`` are display strings (hex)."""

    index: int
    seq: int
    vcpu: int
    pc: int
    field: str
    expected: str
    observed: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "seq": self.seq,
            "vcpu": self.vcpu,
            "pc": hex_or_dash(self.pc),
            "field": self.field,
            "expected": self.expected,
            "observed": self.observed,
            "message": self.message,
        }

    def __str__(self) -> str:
        s = (f"#{self.index} seq={self.seq} vcpu={self.vcpu} pc={self.pc:#x}: "
             f"{self.field} expected {self.expected}, observed {self.observed}")
        return f"{s} ({self.message})" if self.message else s


@dataclass
class RuleResult:
    """Outcome of one rule.

    ``status`` is ``"pass"``, ``"fail"``, ``"info"`` (an informational rule with
    violations) or ``"skipped"``.  ``informational`` rules never fail a report."""

    id: str
    description: str
    checked: int
    violations: int
    status: str
    examples: list[Violation] = field(default_factory=list)
    reason: str | None = None  # why skipped, or a note about partial coverage
    informational: bool = False

    @property
    def ok(self) -> bool:
        return self.informational or self.status != "fail"

    @property
    def status_text(self) -> str:
        if self.status == "skipped" and self.reason:
            return f"skipped ({self.reason})"
        if self.status == "info":
            return f"info ({self.violations})"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "status": self.status,
            "informational": self.informational,
            "checked": self.checked,
            "violations": self.violations,
            "reason": self.reason,
            "examples": [v.to_dict() for v in self.examples],
        }

    def __str__(self) -> str:
        head = f"{self.status.upper():4s}  {self.id:20s} "
        if self.status == "skipped":
            return head + self.status_text
        s = head + f"{self.checked} checked, {self.violations} violation{'s' if self.violations != 1 else ''}"
        if self.informational:
            s += " (informational)"
        if self.reason:
            s += f"  [{self.reason}]"
        for v in self.examples:
            s += "\n        " + str(v)
        if self.violations > len(self.examples):
            s += f"\n        ... {self.violations - len(self.examples)} more"
        return s


@dataclass
class Report:
    """Result of :func:`kvmtrace.analysis.analyze`."""

    rules: list[RuleResult]
    events: int
    mode: str | None
    vcpus: int
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """No rule failed (informational rules are not counted)."""
        return all(r.ok for r in self.rules)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "fail" and not r.informational]

    @property
    def info(self) -> list[RuleResult]:
        """Informational rules that found violations."""
        return [r for r in self.rules if r.status == "info"]

    def __getitem__(self, rule_id: str) -> RuleResult:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def __contains__(self, rule_id: object) -> bool:
        return any(r.id == rule_id for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "mode": self.mode,
            "vcpus": self.vcpus,
            "elapsed_s": round(self.elapsed_s, 6),
            "rules": [r.to_dict() for r in self.rules],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        nfail = len(self.failed)
        verdict = "OK" if self.ok else f"FAIL ({nfail} of {len(self.rules)} rules failed)"
        s = (f"kvmtrace analysis: {verdict} - {self.events} events, mode {self.mode or '?'}, "
             f"{self.vcpus} vCPU{'s' if self.vcpus != 1 else ''}")
        if self.info:
            s += "; informational: " + ", ".join(f"{r.id} ({r.violations})" for r in self.info)
        return s

    def __str__(self) -> str:
        return "\n".join([self.summary()] + ["  " + str(r).replace("\n", "\n  ") for r in self.rules])

    def to_rich_table(self, *, examples: int = 3):  # type: ignore[no-untyped-def]
        """A :class:`rich.table.Table` with one row per rule (plus first violations)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.summary(), show_lines=False)
        table.add_column("rule", style="bold")
        table.add_column("status")
        table.add_column("checked", justify="right")
        table.add_column("violations", justify="right")
        table.add_column("first violations / note", overflow="fold")
        for r in self.rules:
            table.add_row(
                r.id + (" (informational)" if r.informational else ""),
                Text(r.status_text, style=STATUS_STYLES.get(r.status, "")),
                str(r.checked),
                str(r.violations),
                _detail(r, examples),
            )
        return table

    def __rich__(self):  # type: ignore[no-untyped-def]
        return self.to_rich_table()


def _detail(r: RuleResult, examples: int) -> str:
    """The table's last column: the first ``examples`` violations and the note."""
    shown = min(examples, len(r.examples))
    detail = "\n".join(str(v) for v in r.examples[:examples])
    if r.violations > shown:
        detail += f"\n... {r.violations - shown} more"
    if r.reason and r.status != "skipped":
        detail = (detail + "\n" if detail else "") + f"note: {r.reason}"
    return detail
