"""What a rule is: its id and description, its vectorised check over one chunk,
the description of one offending event, and what it needs from the trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation
from kvmtrace.analysis.view import TraceView


def _never(view: TraceView) -> bool:
    return False


def _no_skip(view: TraceView) -> str | None:
    return None


def _nothing(view: TraceView, acc: Collector) -> None:
    return None


@dataclass(frozen=True)
class Rule:
    """One rule.

    ``check(chunk, acc)`` adds the chunk's violations (vectorised, no per-event
    loop); ``describe(view, sub, i, j)`` builds the :class:`Violation` of sorted
    row ``i`` for sub-check ``sub`` (``j``: the row it was compared with, or -1);
    ``needs_prev(view)``: the rule uses the previous event of the same vCPU;
    ``skip_reason(view)``: why the rule cannot run on this trace (None: it can);
    ``finish(view, acc)``: add coverage notes after the last chunk.
    ``informational``: evaluated and counted, never fails a report."""

    id: str
    description: str
    check: Callable[[Chunk, Collector], None]
    describe: Callable[[TraceView, str, int, int], Violation]
    needs_config: bool = True
    informational: bool = False
    needs_prev: Callable[[TraceView], bool] = _never
    skip_reason: Callable[[TraceView], str | None] = _no_skip
    finish: Callable[[TraceView, Collector], None] = _nothing
