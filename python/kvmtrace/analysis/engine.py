"""Chunked evaluation: the rules run chunk by chunk in trace (``seq``) order over
the shared per-chunk arrays (:class:`~kvmtrace.analysis.context.Chunk`), with
the previous-event chains carried from one chunk to the next, so the result is
the same for any chunk size.  Reported indices are those of the input trace."""

from __future__ import annotations

from functools import partial

from kvmtrace.analysis.chains import Chains
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import RuleResult
from kvmtrace.analysis.rules import BY_ID, Rule
from kvmtrace.analysis.view import TraceView

#: Events per chunk: small enough for the temporaries to stay in cache.
CHUNK = 1 << 16
#: The smallest chunk accepted (tests use tiny chunks to check chunking is exact).
_MIN_CHUNK = 16


def _skip_reason(view: TraceView, rule: Rule) -> str | None:
    if view.n == 0:
        return "no events"
    if view.cfg is None and rule.needs_config:
        return "no debug configuration"
    return rule.skip_reason(view)


def _skipped(rule: Rule, reason: str) -> RuleResult:
    return RuleResult(rule.id, rule.description, 0, 0, "skipped", [], reason, rule.informational)


def run(view: TraceView, selected: list[str], max_examples: int, chunk: int = CHUNK) -> list[RuleResult]:
    """Evaluate the rules ``selected`` (ids, in report order) on ``view``."""
    results: dict[str, RuleResult] = {}
    active: list[tuple[Rule, Collector]] = []
    for rule_id in selected:
        rule = BY_ID[rule_id]
        reason = _skip_reason(view, rule)
        if reason is not None:
            results[rule_id] = _skipped(rule, reason)
        else:
            active.append((rule, Collector(rule.id, rule.description, rule.informational, max_examples,
                                           view.orig)))
    need_prev = any(rule.needs_prev(view) for rule, _ in active)
    chains = Chains(view.vcpu, view.single_vcpu, need_prev)
    step = max(int(chunk), _MIN_CHUNK)
    if active:
        for lo in range(0, view.n, step):
            c = Chunk(view, chains, lo, min(view.n, lo + step))
            for rule, acc in active:
                rule.check(c, acc)
    for rule, acc in active:
        rule.finish(view, acc)
        results[rule.id] = acc.result(partial(rule.describe, view))
    return [results[r] for r in selected]
