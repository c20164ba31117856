"""``exception_vector``: the vector is 1 (#DB) or 3 (#BP).  Vector 3 needs an
INT3 at pc: a configured software breakpoint, or (the guest's own INT3) 0xCC in
the code bytes - without code bytes such #BPs are accepted with a note; without
any software breakpoint configured KVM does not intercept #BP at all, so every
vector 3 is wrong.  pc-1 is accepted here and left to ``pc_semantics``.  Vector
1 at a software-breakpoint address is a mislabelled INT3 exit when no justified
#DB cause is present or, while single-stepping, when it repeats the previous
event's pc without being an instruction-breakpoint/GD fault (the step trap
landing on the INT3 comes first, the INT3 exit second).  Runs without a debug
configuration too (then only the vector values are checked)."""

from __future__ import annotations

import numpy as np

from kvmtrace._core import VECTOR_BP, VECTOR_DB
from kvmtrace.analysis.code import fetch
from kvmtrace.analysis.collect import Collector, Sub
from kvmtrace.analysis.config import sw_hit
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView

#: The INT3 opcode.
_INT3 = b"\xcc"
_ONE = np.uint64(1)


def _has_int3(view: TraceView, pcs: np.ndarray) -> np.ndarray:
    """Which ``pcs`` hold an INT3 byte in the guest's code."""
    if view.memory is None or pcs.size == 0:
        return np.zeros(pcs.shape[0], dtype=bool)
    uniq, inv = np.unique(pcs, return_inverse=True)
    hit = np.array([fetch(view.memory, int(u), 1) == _INT3 for u in uniq.tolist()], dtype=bool)
    return hit[inv.reshape(-1)]


def _bp_without_int3(c: Chunk, bp: np.ndarray, acc: Collector) -> np.ndarray | None:
    """Chunk mask of #BP events (``bp``) with no INT3 at pc (or pc-1); None without #BPs."""
    loc = np.flatnonzero(bp)
    if not loc.size:
        return None
    cfg = c.cfg
    p3 = c.pc_c[loc]
    sw = cfg.sw if cfg is not None else np.zeros(0, np.uint64)
    ok = sw_hit(sw, p3) | sw_hit(sw, p3 - _ONE)
    if not ok.all():
        rest = np.flatnonzero(~ok)
        if cfg is not None and not cfg.sw.size:
            pass  # KVM_GUESTDBG_USE_SW_BP is off: KVM never exits on #BP
        elif c.view.memory is not None:  # the guest's own INT3?
            ok[rest] = _has_int3(c.view, p3[rest]) | _has_int3(c.view, p3[rest] - _ONE)
        else:
            ok[rest] = True
            acc.reasons.append("#BP outside the software breakpoints not verified (no code bytes)")
    mask = np.zeros(c.m, dtype=bool)
    mask[loc[~ok]] = True
    return mask


def check(c: Chunk, acc: Collector) -> None:
    cfg = c.cfg
    subs: list[Sub] = []
    if c.db_c is not None and c.bp_c is not None:
        subs.append(("invalid", ~(c.db_c | c.bp_c), None))
        mask = _bp_without_int3(c, c.bp_c, acc)
        if mask is not None:
            subs.append(("bp", mask, None))
    if cfg is not None and cfg.sw.size:
        at_sw = c.only_db(sw_hit(cfg.sw, c.pc_c))
        if at_sw.any():
            subs.append(("unexplained", at_sw & ((c.cause_c & c.allowed_c) == 0), None))
            if cfg.single_step:
                dup = at_sw & c.has_prev & c.db_p & (c.pc_c == c.pc_p) & ~c.fault_c
                subs.append(("dup", dup, c.prev_any))
    acc.add(c.lo, subs, c.m)


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    x = str(int(view.exc[i]))
    if sub == "invalid":
        return view.violation(i, "exception", f"{VECTOR_DB} or {VECTOR_BP}", x,
                              "not a debug (#DB) or breakpoint (#BP) vector")
    if sub == "bp":
        return view.violation(i, "exception", str(VECTOR_DB), x,
                              "#BP at an address without a software breakpoint/INT3")
    if sub == "unexplained":
        return view.violation(i, "exception", str(VECTOR_BP), x,
                              "event at a software breakpoint without a justified #DB cause")
    return view.violation(i, "exception", str(VECTOR_BP), x,
                          f"second #DB at software breakpoint {int(view.pc[i]):#x} right after "
                          f"event #{view.orig_index(j)}: this is the INT3 exit")


def _needs_prev(view: TraceView) -> bool:
    return view.cfg is not None and view.cfg.single_step and bool(view.cfg.sw.size)


RULE = Rule(
    "exception_vector",
    "exception is 1 (#DB) for debug exceptions and 3 (#BP) for INT3 at software-breakpoint addresses",
    check, describe, needs_config=False, needs_prev=_needs_prev,
)
