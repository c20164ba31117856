"""Violations of one rule, collected chunk by chunk: the count, the number of
checked events and the earliest offenders (in the input trace's order), which
are described only at the end, so a rule's description code runs for at most
``max_examples`` events."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kvmtrace.analysis.report import RuleResult, Violation

#: (sub-check id, chunk-local bad mask, function mapping chunk rows to the
#: sorted row of the event each one was compared with, or None)
Sub = tuple[str, np.ndarray, "Callable[[np.ndarray], np.ndarray] | None"]
#: describe(sub-check id, sorted row, compared-with row or -1) -> Violation
Describe = Callable[[str, int, int], Violation]


class Collector:
    def __init__(self, rule_id: str, description: str, informational: bool, k: int, orig: np.ndarray | None):
        self.id = rule_id
        self.description = description
        self.informational = informational
        self.k = k
        self.orig = orig
        self.count = 0
        self.checked = 0
        self.ex: dict[int, tuple[int, int, str]] = {}  # input index -> (sorted row, compared row, sub)
        self.reasons: list[str] = []

    def add(self, lo: int, subs: list[Sub], checked: int) -> None:
        """Record one chunk starting at row ``lo``: its sub-checks and checked count."""
        self.checked += checked
        union = None
        for _, mask, _ in subs:
            union = mask if union is None else (union | mask)
        if union is None:
            return
        c = int(np.count_nonzero(union))
        if not c:
            return
        self.count += c
        for sub, mask, prev_fn in subs:
            loc = np.flatnonzero(mask)
            if loc.size:
                self._keep(lo, loc, sub, prev_fn)

    def _keep(self, lo: int, loc: np.ndarray, sub: str, prev_fn: Callable[[np.ndarray], np.ndarray] | None) -> None:
        k = self.k
        if k <= 0:
            return
        g = loc + lo
        sel: Any
        if self.orig is None:
            o, sel = g, slice(0, k)
        else:
            o = self.orig[g]
            sel = np.argsort(o, kind="stable")[:k]
        g, o, loc = g[sel], o[sel], loc[sel]
        if len(self.ex) >= k and int(o.min()) > max(self.ex):
            return
        p = prev_fn(loc) if prev_fn is not None else np.full(loc.shape[0], -1)
        for oi, gi, pi in zip(o.tolist(), g.tolist(), np.asarray(p).tolist()):
            self.ex.setdefault(oi, (gi, pi, sub))
        if len(self.ex) > 4 * k:
            for key in sorted(self.ex)[k:]:
                del self.ex[key]

    def result(self, describe: Describe) -> RuleResult:
        keys = sorted(self.ex)[: self.k]
        examples = [describe(self.ex[o][2], self.ex[o][0], self.ex[o][1]) for o in keys]
        reason = "; ".join(dict.fromkeys(self.reasons)) or None
        if not self.count:
            status = "pass"
        else:
            status = "info" if self.informational else "fail"
        return RuleResult(self.id, self.description, self.checked, self.count, status, examples, reason,
                          self.informational)
