"""``step_completeness``: in a single-step trace with code bytes each pc is a
successor of the previous event's pc: fall-through, direct branch/call target
(both for Jcc, LOOP, JCXZ), the same pc for REP string instructions, one
instruction further after MOV SS/POP SS, anything after indirect branches,
RET/IRET, INT/INT3/INTO/SYSCALL, far transfers outside real mode, HLT/MWAIT,
exceptions and unreadable or undecodable bytes; the same pc when the later
event is a fault (exec breakpoint, GD, INT3); anything after an event the
tracer re-injects (``inject_db``/``inject_bp``).  Decoding uses the trace
mode's bitness (real 16, protected 32, long 64); each distinct pc is decoded
once.  Asynchronous interrupts delivered between steps show up as gaps (trace
with IRQs blocked)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kvmtrace.analysis.code import U64
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView

#: pc spans up to this size get a direct lookup table (int32 per byte: 64 MiB at most).
_DIRECT_SPAN = 1 << 24
#: Rows per step while marking the pcs present.
_BLOCK = 1 << 20

#: (row of a pc in the tables, "any successor" per distinct pc, candidate successors per distinct pc)
Tables = tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, list[np.ndarray]]


def _index(pc: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The distinct pcs (sorted) and a function mapping pcs to their position."""
    lo, hi = int(pc.min()), int(pc.max())
    span = hi - lo + 1
    if span > _DIRECT_SPAN:
        uniq = np.unique(pc)
        return uniq, lambda x: np.searchsorted(uniq, x)
    base = np.uint64(lo)
    present = np.zeros(span, dtype=bool)
    for a in range(0, pc.shape[0], _BLOCK):
        present[(pc[a:a + _BLOCK] - base).astype(np.intp)] = True
    offs = np.flatnonzero(present)
    table = np.zeros(span, dtype=np.int32)
    table[offs] = np.arange(offs.size, dtype=np.int32)
    return offs.astype(np.uint64) + base, lambda x: table[(x - base).astype(np.intp)]


def _tables(view: TraceView) -> Tables:
    """Successor tables over every distinct pc of the trace."""
    uniq, index_of = _index(view.pc)
    insns = [view.decoder.get(u) for u in uniq.tolist()]
    any_ok = np.array([x.any_succ for x in insns], dtype=bool)
    ncand = max((len(x.succ) for x in insns), default=0)
    # U64 pads the rows of pcs with fewer candidates ("no candidate")
    cands = [np.array([x.succ[j] if j < len(x.succ) else U64 for x in insns], dtype=np.uint64)
             for j in range(ncand)]
    return index_of, any_ok, cands


def check(c: Chunk, acc: Collector) -> None:
    cfg = c.config
    index_of, any_ok, cands = c.view.memo("step_tables", lambda: _tables(c.view))
    u = index_of(c.pc_p)
    ok = any_ok[u]
    for col in cands:
        ok |= c.pc_c == col[u]
    same_fault = c.fault_c if c.bp_c is None else (c.fault_c | c.bp_c)
    ok |= (c.pc_c == c.pc_p) & same_fault
    if cfg.inject_db:
        ok |= c.db_p
    if cfg.inject_bp:
        ok |= c.bp_p
    acc.add(c.lo, [("step", ~ok & c.has_prev, c.prev_any)], c.n_prev)


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    ins = view.decoder.get(int(view.pc[j]))
    exp = ", ".join(hex_or_dash(t) for t in ins.succ) or "?"
    return view.violation(
        i, "pc", exp, hex_or_dash(int(view.pc[i])),
        f"not a successor of event #{view.orig_index(j)} pc={int(view.pc[j]):#x} "
        f"({ins.text}, {ins.length} bytes): lost step?")


def _skip_reason(view: TraceView) -> str | None:
    if not view.config.single_step:
        return "not a single-step trace"
    if view.memory is None:
        return "no memory"
    if view.code is None:
        return f"unknown mode {view.mode!r}"
    return None


def _finish(view: TraceView, acc: Collector) -> None:
    if view.decoder.undecodable:
        acc.reasons.append(f"{len(view.decoder.undecodable)} pc(s) unreadable/undecodable, any successor accepted")


RULE = Rule(
    "step_completeness",
    "while single-stepping every event pc is an architectural successor of the previous event pc (no lost steps)",
    check, describe,
    needs_prev=lambda view: True, skip_reason=_skip_reason, finish=_finish,
)
