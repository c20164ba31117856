"""Shrinking: the fewest blocks of a generated program that still diverge the same way.

Delta debugging (Zeller's ddmin) over the program's removable blocks: try dropping
chunks, halving the chunk size when nothing can go, until no single block can be
dropped (1-minimal) or the attempt budget is spent. Every subset of blocks is a valid
program (see :mod:`kvmtrace.oracle.families`), so only the divergence is checked.
"""

from __future__ import annotations

from typing import Any

from kvmtrace.exceptions import KvmTraceError
from kvmtrace.oracle.generator import ProgramSpec, generate
from kvmtrace.oracle.report import Divergence
from kvmtrace.oracle.spec_diff import diff_spec


class Budget:
    def __init__(self, attempts: int) -> None:
        self.left, self.used = attempts, 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


def _divergence(spec: ProgramSpec, cause: tuple[str, str]) -> Divergence | None:
    try:
        report = diff_spec(spec)
    except KvmTraceError:
        return None
    return next((d for d in report.divergences if d.cause == tuple(cause)), None)


def ddmin(items: list[int], still_fails: Any, budget: Budget) -> list[int]:
    """A 1-minimal sublist of ``items`` for which ``still_fails`` holds (within the budget)."""
    n = 2
    while len(items) >= 2 and budget.left > 0:
        chunk = -(-len(items) // n)
        for start in range(0, len(items), chunk):
            candidate = items[:start] + items[start + chunk:]
            if not budget.take():
                return items
            if still_fails(candidate):
                items, n = candidate, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(2 * n, len(items))
    if len(items) == 1 and budget.take() and still_fails([]):
        return []
    return items


def shrink(spec: ProgramSpec, cause: tuple[str, str], attempts: int = 150) -> dict[str, Any]:
    """Shrink ``spec``; returns the shrunk spec, its divergence and reproducer source."""
    program = generate(spec)
    budget = Budget(attempts)
    found = _divergence(spec, cause)
    if found is None:  # flaky or host-dependent: keep the original as the example
        return {"spec": spec.to_dict(), "shrunk": False, "divergence": None, "attempts": 1,
                "reproducer": program.reproducer(), "blocks": len(program.kept())}
    best = {"divergence": found}

    def still_fails(keep: list[int]) -> bool:
        d = _divergence(program.with_keep(tuple(keep)).spec, cause)
        if d is not None:
            best["divergence"] = d
        return d is not None

    keep = ddmin(program.kept(), still_fails, budget)
    small = program.with_keep(tuple(keep))
    d = best["divergence"]
    note = f"divergence: {d.describe()}" if d else ""
    return {"spec": small.spec.to_dict(), "shrunk": True, "divergence": d.to_dict() if d else None,
            "attempts": budget.used + 1, "blocks": len(keep), "reproducer": small.reproducer(note)}
