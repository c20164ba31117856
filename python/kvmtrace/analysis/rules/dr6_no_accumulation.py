"""``dr6_no_accumulation``: consecutive #DBs of a vCPU (INT3 exits in between are
skipped: they do not touch DR6) must not share a cause bit that is not allowed
for the later event while the later event does carry a justified cause (the
stale bit rides along with a real #DB - the AMD ``debug.arch.dr6``
accumulation, e.g. ``BS|B0`` on every step after a breakpoint hit).  With
single-step and code bytes a carried data ``Bn`` is also stale when the
instruction executed in between does not access memory of the slot's kind."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kvmtrace._core import Dr6
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.config import bits_name
from kvmtrace.analysis.context import Chunk, count, shift
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView


def _verifies_data_bits(view: TraceView) -> bool:
    """Carried data Bn can be refuted: single-step with decodable code."""
    return bool(view.config.data_mask and view.config.single_step and view.code is not None)


def _previous_db(c: Chunk) -> tuple[Any, Any, Callable[[np.ndarray], np.ndarray] | None]:
    """(cause bits of each row's previous #DB, valid mask, row mapping for examples)."""
    v = c.view
    if c.db_c is None:  # every event is a #DB: the previous event is the previous #DB
        pcause = shift(c.classes.cause, c.off) if v.single_vcpu else c.prev_classes().cause
        return pcause, c.has_prev, c.prev_any
    prevdb = c.chains.prev_db(c.lo, c.hi, c.db_c)
    pcause = v.dr6[np.maximum(prevdb, 0)].astype(np.uint16) & np.uint16(Dr6.CAUSE_MASK)
    return pcause, prevdb >= 0, lambda loc: prevdb[loc]


def check(c: Chunk, acc: Collector) -> None:
    cfg = c.config
    pcause, valid, prev_fn = _previous_db(c)
    both = c.cause_c & pcause
    carried = both & ~c.allowed_c
    if _verifies_data_bits(c.view):
        cd = c.only_db(((both & np.uint16(cfg.data_mask)) != 0) & valid & c.has_prev)
        loc = np.flatnonzero(cd)
        if loc.size:
            bits = both[loc] & np.uint16(cfg.data_mask)
            okb = c.view.data_ok_bits(c.pc_p[loc], bits)
            carried = carried.copy()
            carried[loc] |= bits & ~okb
    bad = c.only_db((carried != 0) & ((c.cause_c & c.allowed_c) != 0) & valid)
    acc.add(c.lo, [("acc", bad, prev_fn)], count(c.only_db(valid), c.m))


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    ci = view.classify_one(i, view.prev_row(i))
    cj = int(view.dr6[j]) & Dr6.CAUSE_MASK
    car = ci["cause"] & cj
    car_bad = car & ~ci["allowed"] or car & view.config.data_mask
    exp = int(view.dr6[i]) & ~car_bad
    return view.violation(i, "dr6", hex_or_dash(exp), hex_or_dash(int(view.dr6[i])),
                          f"{bits_name(car_bad)} carried over from event {view.ev(j)}")


def _needs_prev(view: TraceView) -> bool:
    return view.stepping_over or view.all_db or _verifies_data_bits(view)


def _finish(view: TraceView, acc: Collector) -> None:
    if view.config.data_mask and not _verifies_data_bits(view):
        acc.reasons.append("data-breakpoint bits re-verified only for single-step traces with code bytes")


RULE = Rule(
    "dr6_no_accumulation",
    "no DR6 cause bit is carried over from the previous #DB of the same vCPU without being justified again",
    check, describe, needs_prev=_needs_prev, finish=_finish,
)
