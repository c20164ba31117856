"""``pc_semantics``: faults report the instruction, traps the address after it.

(a) an event whose only cause is an exec-slot ``Bn`` has ``pc == DRn`` (a
stale ``Bn`` next to another cause is accumulation instead); (b) single-step:
an exec/GD fault has the previous event's pc (the step trap that landed on the
instruction); (c) with code bytes: a GD fault's pc is a MOV to/from DRn; (d) a
#BP is reported at the INT3 byte, not after it; (e) single-step with code
bytes: a data ``Bn`` trap follows an instruction (the previous event's pc) that
accesses memory of the slot's kind (write: writes; rw: reads or writes; io:
IN/OUT/INS/OUTS; interrupts, far transfers and segment/descriptor loads are
accepted)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kvmtrace._core import Dr6
from kvmtrace.analysis.collect import Collector, Sub
from kvmtrace.analysis.config import bits_name, sw_hit
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView

_ONE = np.uint64(1)


class _Checks:
    """Sub-checks of one chunk and the union of the events they checked."""

    def __init__(self, m: int):
        self.m = m
        self.subs: list[Sub] = []
        self.checked: Any = np.zeros(m, dtype=bool)

    def add(self, sub: str, checked: Any, bad: np.ndarray, prev_fn: Any = None) -> None:
        self.checked |= checked
        self.subs.append((sub, bad, prev_fn))

    def rows(self, loc: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """Chunk mask of the rows ``loc[bad]``."""
        mask = np.zeros(self.m, dtype=bool)
        mask[loc[bad]] = True
        return mask


def _exec_at_slot(c: Chunk, k: _Checks) -> None:  # (a)
    cfg = c.config
    others = (c.cause_c & (np.uint16(Dr6.BS | Dr6.BD | cfg.data_mask) | c.match_c)) != 0
    for s in cfg.exec_slots:
        has = c.only_db((c.cause_c & np.uint16(Dr6.b(s.index))) != 0)
        k.add(f"a{s.index}", has, has & ~others & (c.pc_c != np.uint64(s.addr)))


def _gd_at_mov_dr(c: Chunk, acc: Collector, k: _Checks) -> None:  # (c)
    g = c.only_db(c.gd_c)
    loc = np.flatnonzero(g)
    if not loc.size:
        return
    if c.view.code is None:
        acc.reasons.append("GD instruction not verified (no code bytes)")
        return
    ok = c.view.props(c.pc_c[loc], lambda ins: (not ins.decoded) or ins.movdr)
    k.add("c", g, k.rows(loc, ~ok))


def _bp_at_int3(c: Chunk, bp: np.ndarray, k: _Checks) -> None:  # (d)
    loc = np.flatnonzero(bp)
    if loc.size:
        sw, p3 = c.config.sw, c.pc_c[loc]
        k.add("d", bp, k.rows(loc, ~sw_hit(sw, p3) & sw_hit(sw, p3 - _ONE)))


def _data_after_access(c: Chunk, acc: Collector, k: _Checks) -> None:  # (e)
    cfg = c.config
    if not (cfg.single_step and c.view.code is not None):
        acc.reasons.append("data-breakpoint pcs verified only for single-step traces with code bytes")
        return
    cand = c.only_db(((c.cause_c & np.uint16(cfg.data_mask)) != 0) & ~c.fault_c & c.has_prev)
    loc = np.flatnonzero(cand)
    if loc.size:
        bits = c.cause_c[loc] & np.uint16(cfg.data_mask)
        okb = c.view.data_ok_bits(c.pc_p[loc], bits)
        k.add("e", cand, k.rows(loc, (bits & ~okb) != 0), c.prev_any)


def check(c: Chunk, acc: Collector) -> None:
    cfg = c.config
    k = _Checks(c.m)
    if cfg.exec_slots:
        _exec_at_slot(c, k)
    if cfg.single_step and (cfg.exec_slots or cfg.general_detect):  # (b)
        fc = c.only_db(c.fault_c & c.has_prev)
        k.add("b", fc, fc & (c.pc_c != c.pc_p), c.prev_any)
    if cfg.general_detect:
        _gd_at_mov_dr(c, acc, k)
    if cfg.sw.size and c.bp_c is not None:
        _bp_at_int3(c, c.bp_c, k)
    if cfg.data_mask:
        _data_after_access(c, acc, k)
    acc.add(c.lo, k.subs, int(np.count_nonzero(k.checked)))


def _describe_exec(view: TraceView, slot: int, i: int) -> Violation:
    s = next(s for s in view.config.exec_slots if s.index == slot)
    pc = int(view.pc[i])
    msg = f"B{s.index} (exec breakpoint) reported at pc != DR{s.index}"
    if view.code is not None:
        ins = view.decoder.get(s.addr)
        if ins.decoded and pc == s.addr + ins.length:
            msg += " - pc is after the instruction (trap semantics for a fault)"
    return view.violation(i, "pc", hex_or_dash(s.addr), hex_or_dash(pc), msg)


def _describe_data(view: TraceView, i: int, j: int) -> Violation:
    cfg = view.config
    ins = view.decoder.get(int(view.pc[j]))
    bits = int(view.dr6[i]) & cfg.data_mask
    kinds = "/".join(sorted({s.kind for s in cfg.data_slots if bits & Dr6.b(s.index)}))
    return view.violation(i, "pc", f"trap after a {kinds} access", f"{int(view.pc[j]):#x}: {ins.text}",
                          f"{bits_name(bits)} data breakpoint but the instruction executed before "
                          f"the trap (event #{view.orig_index(j)}) does not access memory that way")


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    pc = int(view.pc[i])
    if sub.startswith("a"):
        return _describe_exec(view, int(sub[1:]), i)
    if sub == "b":
        kind = "GD" if view.classify_one(i)["gd_fault"] else "instruction-breakpoint"
        return view.violation(i, "pc", hex_or_dash(int(view.pc[j])), hex_or_dash(pc),
                              f"{kind} fault must be reported at the instruction the previous step "
                              f"(event #{view.orig_index(j)}) landed on")
    if sub == "c":
        return view.violation(i, "pc", "a MOV to/from DRn", view.decoder.get(pc).text,
                              "GD fault not at a debug-register access")
    if sub == "d":
        return view.violation(i, "pc", hex_or_dash(pc - 1), hex_or_dash(pc),
                              "#BP must report the address of the INT3 byte, not the address after it")
    return _describe_data(view, i, j)


def _needs_prev(view: TraceView) -> bool:
    cfg = view.config
    return cfg.single_step and bool(cfg.exec_slots or cfg.general_detect or (cfg.data_mask and view.code is not None))


RULE = Rule(
    "pc_semantics",
    "faults (instruction breakpoints, GD, INT3) report the instruction address; "
    "traps report the address after the executed instruction",
    check, describe, needs_prev=_needs_prev,
)
