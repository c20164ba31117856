"""The verdict of one scenario in one mode: per aspect, then for the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmtrace.conformance.model import ARCHITECTURAL, ASPECTS, Check, Verdict


def combine_aspects(checks: list[Check]) -> dict[str, str]:
    """Every aspect over a run's checks: ``fail`` if any check failed it, ``info`` (dr7_report)
    if any differed informationally, ``pass`` if some check judged it, else ``n/a``."""
    out = {}
    for aspect in ASPECTS:
        states = {s for c in checks if (s := c.aspects().get(aspect))}
        out[aspect] = ("fail" if "fail" in states else "info" if "info" in states
                       else "pass" if states else "n/a")
    return out


@dataclass
class Result:
    """The verdict of one scenario in one mode."""

    scenario: str
    mode: str
    verdict: Verdict
    checks: list[Check] = field(default_factory=list)
    #: Why: the unsupported capability, the error, or a summary of the first mismatch.
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    cite: str = ""
    #: "intel" or "amd" when the scenario's expectations depend on the CPU vendor.
    vendor_expectation: str | None = None

    @property
    def aspects(self) -> dict[str, str]:
        return combine_aspects(self.checks)

    @property
    def decisive(self) -> Check | None:
        """The check that decides the verdict: the first failing one, else the first one."""
        for c in self.checks:
            if not c.ok:
                return c
        return self.checks[0] if self.checks else None

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        d = self.decisive
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "verdict": self.verdict.value,
            "aspects": self.aspects,
            "expected": d.expected.to_dict() if d is not None else None,
            "observed": d.observed.to_dict() if d is not None else None,
            "detail": {
                "reason": self.reason,
                "checks_passed": sum(c.ok for c in self.checks),
                "checks_total": len(self.checks),
                "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes),
                "elapsed_s": round(self.elapsed_s, 6),
                "cite": self.cite,
                "vendor_expectation": self.vendor_expectation,
            },
        }


def verdict_of(checks: list[Check]) -> tuple[Verdict, str]:
    """``pass`` when every check matched in every architectural aspect, else ``fail`` with the
    first mismatch as the reason. Informational differences (dr7) are counted, never failed."""
    if not checks:
        return Verdict.ERROR, "the scenario made no check"
    bad = [c for c in checks if not c.ok]
    noted = sum(bool(c.info) for c in checks)
    extra = f"; reported dr7 differs in {noted} (informational)" if noted else ""
    if not bad:
        return Verdict.PASS, f"{len(checks)} checks matched{extra}"
    first = bad[0]
    why = "; ".join(str(m) for m in first.mismatches)
    note = f" ({first.observed.note})" if first.observed.note else ""
    failed = sorted({m.aspect for c in bad for m in c.mismatches}, key=ARCHITECTURAL.index)
    return Verdict.FAIL, (f"{len(bad)} of {len(checks)} checks differ ({', '.join(failed)}); "
                          f"first: {first.label}: {why}{note}")
