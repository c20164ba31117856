"""Tests for kvmtrace.analysis on synthetic KVM_EXIT_DEBUG traces.

The traces are produced by a tiny model of a real-mode guest loop (bytes below,
assembled from the listing with ``as --32`` / ``ld -Ttext=0x7c00`` /
``objcopy -O binary``) and the configured guest-debug features; the trace and
debug configuration stand-ins are ``SimpleNamespace`` objects with the fields
of kvmtrace's Trace and GuestDebug.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from kvmtrace.analysis import (
    DR6_FIXED_ONES,
    CodeImage,
    Report,
    RuleResult,
    Violation,
    analyze,
    analyze_columns,
)

# --------------------------------------------------------------------------
# Guest code: real mode, loaded at 0x7c00
# --------------------------------------------------------------------------
#   7c00: 31 c0        xor   %ax,%ax
#   7c02: bb 00 05     mov   $0x500,%bx
#   7c05: b9 03 00     mov   $3,%cx
# loop1:
#   7c08: 40           inc   %ax
#   7c09: 89 07        mov   %ax,(%bx)        <- writes 0x500 on the 1st iteration
#   7c0b: 83 c3 02     add   $2,%bx
#   7c0e: e8 0f 00     call  sub (7c20)
#   7c11: 3d ff 7f     cmp   $0x7fff,%ax
#   7c14: 74 04        je    never (7c1a)     <- never taken
#   7c16: e2 f0        loop  loop1 (7c08)
#   7c18: e3 01        jcxz  done (7c1b)      <- always taken
# never:
#   7c1a: 90           nop
# done:
#   7c1b: 0f 23 c0     mov   %eax,%dr0
#   7c1e: eb e0        jmp   _start (7c00)
# sub:
#   7c20: 50           push  %ax
#   7c21: 58           pop   %ax
#   7c22: c3           ret
BASE = 0x7C00
CODE = bytes.fromhex(
    "31c0bb0005b9030040890783c302e80f003dff7f7404e2f0e301900f23c0ebe05058c3"
)
IMAGE = CodeImage([(BASE, CODE)])
PATCHED_IMAGE = CodeImage([(BASE, CODE[:0x20] + b"\xcc" + CODE[0x21:])])  # int3 at sub

CLEAN = DR6_FIXED_ONES  # 0xffff0ff0
BS = 1 << 14
BD = 1 << 13
B0, B1 = 1, 2
DR7_FIXED = 0x400
GD = 1 << 13
VEC_DB, VEC_BP = 1, 3

EXEC_BP = 0x7C0B  # add $2,%bx
DATA_ADDR = 0x500
SW_BP = 0x7C20  # push %ax
MOVDR = 0x7C1B
# DR0 exec (G0), DR1 write len 2 (G1, R/W1=01, LEN1=01)
DR7_BPS = DR7_FIXED | (1 << 1) | (1 << 3) | (0b01 << 20) | (0b01 << 22)


def executed(passes: int = 2, loops: int = 3) -> list[tuple[int, int | None]]:
    """Instruction addresses the guest executes, with the data address written
    by ``mov %ax,(%bx)`` (None for other instructions)."""
    out: list[tuple[int, int | None]] = []
    for _ in range(passes):
        out += [(0x7C00, None), (0x7C02, None), (0x7C05, None)]
        bx = 0x500
        for it in range(loops):
            out += [(0x7C08, None), (0x7C09, bx), (0x7C0B, None), (0x7C0E, None),
                    (0x7C20, None), (0x7C21, None), (0x7C22, None),
                    (0x7C11, None), (0x7C14, None), (0x7C16, None)]
            bx += 2
        out += [(0x7C18, None), (0x7C1B, None), (0x7C1E, None)]
    out.append((0x7C00, None))
    return out


def make_debug(*, single_step=False, exec_bp=False, data_bp=False, sw_bp=False,
               general_detect=False, dr7=None, inject_db=False, inject_bp=False):
    hw = []
    if exec_bp or data_bp:
        hw.append(SimpleNamespace(addr=EXEC_BP, kind="exec", length=1) if exec_bp else None)
    if data_bp:
        hw.append(SimpleNamespace(addr=DATA_ADDR, kind="write", length=2))
    if dr7 is None:
        dr7 = DR7_FIXED
        if exec_bp:
            dr7 |= 1 << 1
        if data_bp:
            dr7 |= (1 << 3) | (0b01 << 20) | (0b01 << 22)
        if general_detect:
            dr7 |= GD
    return SimpleNamespace(
        single_step=single_step,
        hw_breakpoints=hw,
        sw_breakpoints=[SW_BP] if sw_bp else [],
        general_detect=general_detect,
        dr7=dr7,
        inject_db=inject_db,
        inject_bp=inject_bp,
    )


class FakeTrace(SimpleNamespace):
    """Stand-in for kvmtrace.Trace: numpy columns + mode (+ optional debug)."""

    def __len__(self) -> int:
        return len(self.pc)


def trace_from(events, *, mode="real", debug=None, **extra):
    """events: list of (pc, dr6, dr7, exception[, vcpu])."""
    n = len(events)

    def col(k, dt, default=0):
        return np.array([e[k] if len(e) > k else default for e in events], dtype=dt)

    return FakeTrace(
        pc=col(0, np.uint64), dr6=col(1, np.uint64), dr7=col(2, np.uint64),
        exception=col(3, np.uint8), vcpu=col(4, np.uint16),
        seq=np.arange(n, dtype=np.uint64), mode=mode, debug=debug, **extra,
    )


def ss_events(debug, passes=2) -> list[tuple]:
    """Single-step trace (optionally with exec/data/sw breakpoints and GD)."""
    ex = executed(passes)
    dr7 = debug.dr7 | DR7_FIXED
    data_on = any(bp is not None and bp.kind == "write" for bp in debug.hw_breakpoints)
    exec_on = any(bp is not None and bp.kind == "exec" for bp in debug.hw_breakpoints)
    ev: list[tuple] = []
    last = (CLEAN, DR7_FIXED)
    for (_pc, wr), (nxt, _) in zip(ex, ex[1:]):
        dr6 = CLEAN | BS
        if data_on and wr == DATA_ADDR:
            dr6 |= B1
        ev.append((nxt, dr6, dr7, VEC_DB))
        last = (dr6, dr7)
        if exec_on and nxt == EXEC_BP:
            ev.append((nxt, CLEAN | B0, dr7, VEC_DB))
            last = (CLEAN | B0, dr7)
        if nxt == SW_BP and debug.sw_breakpoints:
            ev.append((nxt, last[0], last[1], VEC_BP))  # KVM leaves dr6/dr7 stale on #BP
        if debug.general_detect and nxt == MOVDR:
            ev.append((nxt, CLEAN | BD, dr7, VEC_DB))
            last = (CLEAN | BD, dr7)
    return ev


def run_events(debug, passes=2) -> list[tuple]:
    """Free-running trace: only breakpoint / GD events."""
    ex = executed(passes)
    dr7 = debug.dr7 | DR7_FIXED
    data_on = any(bp is not None and bp.kind == "write" for bp in debug.hw_breakpoints)
    exec_on = any(bp is not None and bp.kind == "exec" for bp in debug.hw_breakpoints)
    ev: list[tuple] = []
    last = (0, 0)  # a fresh kvm_run is zeroed
    for (pc, wr), (nxt, _) in zip(ex, ex[1:]):
        if exec_on and pc == EXEC_BP:
            ev.append((pc, CLEAN | B0, dr7, VEC_DB))
            last = (CLEAN | B0, dr7)
        if pc == SW_BP and debug.sw_breakpoints:
            ev.append((pc, last[0], last[1], VEC_BP))
        if debug.general_detect and pc == MOVDR:
            ev.append((pc, CLEAN | BD, dr7, VEC_DB))
            last = (CLEAN | BD, dr7)
        if data_on and wr == DATA_ADDR:
            ev.append((nxt, CLEAN | B1, dr7, VEC_DB))
            last = (CLEAN | B1, dr7)
    return ev


def check(events, debug, *, memory=IMAGE, mode="real", **kw) -> Report:
    return analyze(trace_from(events, mode=mode), debug, memory=memory, **kw)


def assert_clean(rep: Report, *, skipped=()):
    assert rep.ok, str(rep)
    for r in rep.rules:
        if r.id in skipped:
            assert r.status == "skipped", str(r)
        else:
            assert r.status == "pass", str(r)
            assert r.violations == 0 and r.examples == []


def failing(rep: Report) -> set[str]:
    return {r.id for r in rep.failed}


# --------------------------------------------------------------------------
# Clean traces: every rule silent
# --------------------------------------------------------------------------

ALL_RULES = {"dr6_fixed_bits", "dr6_cause", "dr6_no_accumulation", "exception_vector",
             "pc_semantics", "step_completeness", "dr7_echo"}


def test_rule_ids_are_stable():
    dbg = make_debug(single_step=True)
    rep = check(ss_events(dbg), dbg)
    assert [r.id for r in rep.rules] == ["dr6_fixed_bits", "dr6_cause", "dr6_no_accumulation",
                                         "exception_vector", "pc_semantics", "step_completeness",
                                         "dr7_echo"]


def test_clean_single_step():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg, passes=3)
    rep = check(ev, dbg)
    assert_clean(rep)
    assert rep.events == len(ev)
    assert rep["step_completeness"].checked == len(ev) - 1
    assert rep["dr6_cause"].checked == len(ev)


def test_clean_single_step_with_all_breakpoints():
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    ev = ss_events(dbg, passes=3)
    # sanity of the generator: exec faults, data traps and INT3 exits are present
    assert sum(1 for e in ev if e[1] == CLEAN | B0) == 9
    assert sum(1 for e in ev if e[1] == CLEAN | BS | B1) == 3
    assert sum(1 for e in ev if e[3] == VEC_BP) == 9
    assert_clean(check(ev, dbg))
    # the patched image (INT3 in memory) is just as acceptable
    assert_clean(check(ev, dbg, memory=PATCHED_IMAGE))


def test_clean_breakpoints_without_single_step():
    dbg = make_debug(exec_bp=True, data_bp=True, sw_bp=True)
    ev = run_events(dbg, passes=3)
    # the data trap lands on the exec breakpoint address (trap, not a fault)
    assert (EXEC_BP, CLEAN | B1, DR7_BPS, VEC_DB) in ev
    assert ev[0] == (EXEC_BP, CLEAN | B1, DR7_BPS, VEC_DB)
    rep = check(ev, dbg)
    assert_clean(rep, skipped={"step_completeness"})
    assert rep["step_completeness"].reason == "not a single-step trace"


def test_first_int3_exit_with_zeroed_dr6_is_fine():
    dbg = make_debug(sw_bp=True)
    ev = run_events(dbg)
    assert ev[0] == (SW_BP, 0, 0, VEC_BP)
    assert_clean(check(ev, dbg), skipped={"step_completeness"})


def test_clean_general_detect():
    dbg = make_debug(single_step=True, general_detect=True)
    ev = ss_events(dbg)
    assert (MOVDR, CLEAN | BD, DR7_FIXED | GD, VEC_DB) in ev
    assert_clean(check(ev, dbg))
    # free-running GD; DR7.GD already cleared in the report is accepted too
    dbg2 = make_debug(general_detect=True)
    ev2 = [(pc, dr6, dr7 & ~GD, x) for pc, dr6, dr7, x in run_events(dbg2)]
    assert ev2 and all(e[0] == MOVDR for e in ev2)
    assert_clean(check(ev2, dbg2), skipped={"step_completeness"})


def test_clean_multi_vcpu_interleaved():
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    a = ss_events(dbg, passes=2)
    b = ss_events(dbg, passes=2)[5:]  # vCPU 1 is elsewhere in the loop
    ev = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            ev.append(a[i] + (0,))
        if i < len(b):
            ev.append(b[i] + (1,))
    rep = check(ev, dbg)
    assert_clean(rep)
    assert rep.vcpus == 2
    assert rep["step_completeness"].checked == len(ev) - 2


def test_code_regions_from_trace_and_mode_from_trace():
    dbg = make_debug(single_step=True)
    t = trace_from(ss_events(dbg), mode="real", code_regions=[(BASE, CODE)])
    assert_clean(analyze(t, dbg))
    # debug taken from trace.debug
    t.debug = dbg
    assert_clean(analyze(t))


def test_step_completeness_skipped_without_memory():
    dbg = make_debug(single_step=True)
    rep = analyze(trace_from(ss_events(dbg)), dbg)
    r = rep["step_completeness"]
    assert r.status == "skipped" and r.reason == "no memory"
    assert r.status_text == "skipped (no memory)"
    assert "skipped (no memory)" in str(rep)
    assert rep.ok


def test_long_mode_decoding_uses_64_bit():
    #   400000: 48 ff c0   inc  %rax
    #   400003: 48 89 07   mov  %rax,(%rdi)
    #   400006: eb f8      jmp  400000
    code = bytes.fromhex("48ffc0488907ebf8")
    mem = CodeImage({0x400000: code})
    pcs = [0x400003, 0x400006, 0x400000] * 4
    dbg = make_debug(single_step=True)
    ev = [(pc, CLEAN | BS, DR7_FIXED, VEC_DB) for pc in pcs]
    assert_clean(check(ev, dbg, memory=mem, mode="long"))
    # decoded as 16-bit code (0x48 = dec %ax) the same trace has gaps
    rep = check(ev, dbg, memory=mem, mode="real")
    assert failing(rep) == {"step_completeness"}


def test_rep_string_and_mov_ss_shadow():
    #   1000: f3 aa      rep stosb           (each iteration traps at 1000)
    #   1002: 8e d0      mov %ax,%ss         (inhibits the trap after the next insn)
    #   1004: 89 c4      mov %ax,%sp
    #   1006: eb f8      jmp 1000
    mem = CodeImage([(0x1000, bytes.fromhex("f3aa8ed089c4ebf8"))])
    dbg = make_debug(single_step=True)
    pcs = [0x1000, 0x1000, 0x1002, 0x1006, 0x1000, 0x1002, 0x1004, 0x1006]
    ev = [(pc, CLEAN | BS, DR7_FIXED, VEC_DB) for pc in pcs]
    assert_clean(check(ev, dbg, memory=mem))


# --------------------------------------------------------------------------
# Injected defects
# --------------------------------------------------------------------------


def _index(ev, pred, nth=0):
    return [i for i, e in enumerate(ev) if pred(e)][nth]


def test_accumulated_bits_after_breakpoint_hit():
    """AMD-style bug: DR6 is not cleared after the exec-breakpoint hit, so the
    following single-step exits report BS|B0."""
    dbg = make_debug(single_step=True, exec_bp=True)
    ev = ss_events(dbg)
    f = _index(ev, lambda e: e[1] == CLEAN | B0)
    for k in (f + 1, f + 2, f + 3):
        ev[k] = (ev[k][0], ev[k][1] | B0) + ev[k][2:]
    rep = check(ev, dbg)
    acc = rep["dr6_no_accumulation"]
    assert acc.status == "fail" and acc.violations == 3
    v = acc.examples[0]
    assert v.index == f + 1 and v.field == "dr6"
    assert v.observed == "0xffff4ff1" and v.expected == "0xffff4ff0"
    assert "B0 carried over" in v.message
    assert rep["dr6_cause"].status == "fail"
    assert {"dr6_fixed_bits", "dr7_echo", "step_completeness", "exception_vector"}.isdisjoint(failing(rep))


def test_accumulated_bs_into_instruction_breakpoint_fault():
    dbg = make_debug(single_step=True, exec_bp=True)
    ev = ss_events(dbg)
    f = _index(ev, lambda e: e[1] == CLEAN | B0)
    ev[f] = (ev[f][0], CLEAN | BS | B0) + ev[f][2:]
    rep = check(ev, dbg)
    acc = rep["dr6_no_accumulation"]
    assert acc.violations == 1 and acc.examples[0].index == f
    assert acc.examples[0].expected == "0xffff0ff1"
    cause = rep["dr6_cause"]
    assert cause.violations == 1 and "BS set on a fault event" in cause.examples[0].message


def test_accumulated_data_bit_detected_with_decoding():
    dbg = make_debug(single_step=True, data_bp=True)
    ev = ss_events(dbg)
    d = _index(ev, lambda e: e[1] == CLEAN | BS | B1)
    ev[d + 1] = (ev[d + 1][0], CLEAN | BS | B1) + ev[d + 1][2:]  # after "add %bx": no memory access
    rep = check(ev, dbg)
    assert rep["dr6_no_accumulation"].violations == 1
    assert rep["dr6_no_accumulation"].examples[0].index == d + 1
    assert rep["pc_semantics"].violations == 1  # data trap after a non-accessing instruction
    # without code bytes a data bit of an enabled slot cannot be refuted
    rep2 = analyze(trace_from(ev), dbg)
    assert rep2["dr6_no_accumulation"].status == "pass"


def test_lost_step_in_real_mode_loop():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg, passes=2)
    k = _index(ev, lambda e: e[0] == 0x7C0B, nth=1)  # drop the step that landed on "add"
    del ev[k]
    rep = check(ev, dbg)
    r = rep["step_completeness"]
    assert r.status == "fail" and r.violations == 1
    v = r.examples[0]
    assert v.index == k and v.pc == 0x7C0E
    assert v.expected == "0x7c0b" and v.observed == "0x7c0e"
    assert "lost step" in v.message and "mov" in v.message
    assert failing(rep) == {"step_completeness"}


def test_lost_step_after_taken_branch_and_on_second_vcpu():
    dbg = make_debug(single_step=True)
    a = ss_events(dbg)
    b = ss_events(dbg)
    k = _index(b, lambda e: e[0] == 0x7C1B)  # landed after "jcxz done" (taken)
    del b[k]
    ev = [e + (0,) for e in a] + [e + (1,) for e in b]
    rep = check(ev, dbg)
    r = rep["step_completeness"]
    assert r.violations == 1
    v = r.examples[0]
    assert v.vcpu == 1 and v.pc == 0x7C1E and v.expected == "0x7c1a, 0x7c1b"  # jcxz: both ways


def test_wrong_vector_on_single_step_event():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[7] = ev[7][:3] + (VEC_BP,)
    rep = check(ev, dbg)
    r = rep["exception_vector"]
    assert r.violations == 1 and r.examples[0].index == 7
    assert (r.examples[0].expected, r.examples[0].observed) == ("1", "3")


def test_int3_exit_reported_as_db():
    dbg = make_debug(single_step=True, sw_bp=True)
    ev = ss_events(dbg)
    k = _index(ev, lambda e: e[3] == VEC_BP)
    ev[k] = ev[k][:3] + (VEC_DB,)
    rep = check(ev, dbg)
    r = rep["exception_vector"]
    assert r.violations == 1 and r.examples[0].index == k
    assert (r.examples[0].expected, r.examples[0].observed) == ("3", "1")
    # free-running: the mislabelled INT3 has no #DB cause at all
    dbg2 = make_debug(sw_bp=True, exec_bp=True)
    ev2 = run_events(dbg2)
    k2 = _index(ev2, lambda e: e[3] == VEC_BP, nth=1)
    ev2[k2] = (ev2[k2][0], CLEAN, ev2[k2][2], VEC_DB)
    r2 = check(ev2, dbg2)["exception_vector"]
    assert r2.violations == 1 and r2.examples[0].index == k2


def test_unknown_vector():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[3] = ev[3][:3] + (14,)
    r = check(ev, dbg)["exception_vector"]
    assert r.violations == 1 and r.examples[0].observed == "14"


def test_clobbered_dr6_guest_written_value():
    """The guest wrote DR6=0xffff4ff1 itself and that value leaks into an exit."""
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[10] = (ev[10][0], 0xFFFF4FF1) + ev[10][2:]
    rep = check(ev, dbg)
    r = rep["dr6_cause"]
    assert r.violations == 1
    v = r.examples[0]
    assert v.index == 10 and v.observed == "0xffff4ff1" and v.expected == "0xffff4ff0"
    assert "DR0 is not configured" in v.message
    assert failing(rep) == {"dr6_cause"}


@pytest.mark.parametrize("bad_dr6, what", [
    (0xFFFF5FF0, "bit 12 set"),
    (0x00004FF0, "upper 16 bits truncated"),
    (0xFFFE4FF0, "RTM cleared outside RTM"),
    (0xFFFF4F70, "reserved bit 7 cleared"),
])
def test_wrong_fixed_bits(bad_dr6, what):
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[4] = (ev[4][0], bad_dr6) + ev[4][2:]
    rep = check(ev, dbg)
    r = rep["dr6_fixed_bits"]
    assert r.violations == 1, what
    v = r.examples[0]
    assert v.index == 4 and v.expected == "0xffff4ff0" and v.observed == hex(bad_dr6)
    assert "dr6_cause" not in failing(rep)


def test_rtm_bit_may_clear_when_dr7_rtm_enabled():
    dbg = make_debug(single_step=True, dr7=DR7_FIXED | (1 << 11))
    ev = ss_events(dbg)
    ev[4] = (ev[4][0], 0xFFFE4FF0) + ev[4][2:]
    assert check(ev, dbg)["dr6_fixed_bits"].status == "pass"


def test_upper_32_bits_set():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[2] = (ev[2][0], 0x1_FFFF4FF0) + ev[2][2:]
    r = check(ev, dbg)["dr6_fixed_bits"]
    assert r.violations == 1
    v = r.examples[0]
    assert v.expected == "0xffff4ff0" and v.observed == "0x1ffff4ff0" and "63:32" in v.message


def test_wrong_dr7_echo():
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True)
    ev = ss_events(dbg)
    assert_clean(check(ev, dbg))
    # bit 10 missing everywhere (reported raw configured value without the fixed 1)
    ev2 = [(e[0], e[1], e[2] & ~DR7_FIXED, e[3]) for e in ev]
    r = check(ev2, dbg)["dr7_echo"]
    assert r.violations == len(ev) and r.examples[0].expected == hex(DR7_BPS)
    # one event reports the guest's own DR7
    ev3 = list(ev)
    ev3[6] = ev3[6][:2] + (DR7_FIXED, VEC_DB)
    r3 = check(ev3, dbg)["dr7_echo"]
    assert r3.violations == 1 and r3.examples[0].index == 6 and r3.examples[0].observed == "0x400"
    # upper bits
    ev4 = list(ev)
    ev4[1] = ev4[1][:2] + (DR7_BPS | 1 << 40, VEC_DB)
    assert check(ev4, dbg)["dr7_echo"].violations == 1


def test_dr7_configured_without_bit10_is_compared_with_bit10():
    dbg = make_debug(single_step=True, exec_bp=True, dr7=0x2)
    ev = ss_events(dbg)
    assert all(e[2] == 0x402 for e in ev if e[3] == VEC_DB)
    assert check(ev, dbg)["dr7_echo"].status == "pass"


def test_pc_semantics_exec_breakpoint_reported_as_trap():
    dbg = make_debug(exec_bp=True)
    ev = run_events(dbg)
    k = 1
    assert ev[k] == (EXEC_BP, CLEAN | B0, DR7_FIXED | 2, VEC_DB)
    ev[k] = (EXEC_BP + 3,) + ev[k][1:]  # pc after "add $2,%bx"
    rep = check(ev, dbg)
    r = rep["pc_semantics"]
    assert r.violations == 1
    v = r.examples[0]
    assert v.index == k and v.expected == "0x7c0b" and v.observed == "0x7c0e"
    assert "after the instruction" in v.message
    assert "dr6_cause" in failing(rep)
    assert "dr6_no_accumulation" not in failing(rep)


def test_pc_semantics_exec_fault_must_follow_step_at_same_pc():
    dbg = make_debug(single_step=True, exec_bp=True)
    ev = ss_events(dbg)
    f = _index(ev, lambda e: e[1] == CLEAN | B0)
    del ev[f - 1]  # the step trap landing on the breakpoint is missing
    r = check(ev, dbg)["pc_semantics"]
    assert r.violations == 1 and r.examples[0].index == f - 1


def test_pc_semantics_int3_after_the_int3_byte():
    dbg = make_debug(single_step=True, sw_bp=True)
    ev = ss_events(dbg)
    k = _index(ev, lambda e: e[3] == VEC_BP)
    ev[k] = (SW_BP + 1,) + ev[k][1:]
    rep = check(ev, dbg)
    r = rep["pc_semantics"]
    assert r.violations == 1
    assert (r.examples[0].expected, r.examples[0].observed) == ("0x7c20", "0x7c21")
    assert "exception_vector" not in failing(rep)


def test_pc_semantics_gd_not_at_mov_dr():
    dbg = make_debug(general_detect=True)
    ev = run_events(dbg)
    ev[0] = (MOVDR + 3,) + ev[0][1:]  # reported after the MOV DR (trap-like)
    r = check(ev, dbg)["pc_semantics"]
    assert r.violations == 1 and r.examples[0].index == 0
    assert r.examples[0].observed.startswith("jmp")


def test_pc_semantics_data_trap_reported_as_fault():
    """Data breakpoint reported at the writing instruction instead of after it."""
    dbg = make_debug(single_step=True, data_bp=True)
    ev = ss_events(dbg)
    d = _index(ev, lambda e: e[1] == CLEAN | BS | B1)
    assert ev[d][0] == 0x7C0B and ev[d - 1][0] == 0x7C09
    # the B1 shows up one event early: on the trap after "inc %ax"
    ev[d - 1] = (ev[d - 1][0], CLEAN | BS | B1) + ev[d - 1][2:]
    ev[d] = (ev[d][0], CLEAN | BS) + ev[d][2:]
    rep = check(ev, dbg)
    r = rep["pc_semantics"]
    assert r.violations == 1 and r.examples[0].index == d - 1
    assert "inc" in r.examples[0].observed


def test_missing_cause_bits():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    ev[5] = (ev[5][0], CLEAN) + ev[5][2:]
    r = check(ev, dbg)["dr6_cause"]
    assert r.violations == 1 and "missing BS" in r.examples[0].message
    dbg2 = make_debug(exec_bp=True)
    ev2 = run_events(dbg2)
    ev2[0] = (ev2[0][0], CLEAN) + ev2[0][2:]
    r2 = check(ev2, dbg2)["dr6_cause"]
    assert r2.violations == 1 and "missing B0" in r2.examples[0].message


def test_bn_for_disabled_slot_and_bs_without_single_step():
    # DR0 configured but disabled in DR7
    dbg = make_debug(exec_bp=True, dr7=DR7_FIXED)
    ev = [(EXEC_BP, CLEAN | B0, DR7_FIXED, VEC_DB)]
    r = check(ev, dbg)["dr6_cause"]
    assert r.violations == 1 and "disabled" in r.examples[0].message
    dbg2 = make_debug(data_bp=True)
    ev2 = run_events(dbg2, passes=3)
    assert len(ev2) == 3
    ev2[1] = (ev2[1][0], CLEAN | BS | B1) + ev2[1][2:]
    r2 = check(ev2, dbg2)["dr6_cause"]
    assert r2.violations == 1 and "single-step is off" in r2.examples[0].message


def test_step_over_parked_faults():
    """kvmtrace steps past an exec/GD breakpoint or INT3 with single-step on and
    the trigger disarmed: the next event may carry BS and that temporary DR7."""
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    ev = ss_events(dbg)
    f = [i for i, e in enumerate(ev) if e[1] == CLEAN | B0]
    for i in f:
        ev[i + 1] = ev[i + 1][:2] + (DR7_BPS & ~0b11, VEC_DB)  # DR0's L0/G0 cleared
    assert_clean(check(ev, dbg))
    # the same DR7 anywhere else is wrong
    k = f[0] + 3
    ev[k] = ev[k][:2] + (DR7_BPS & ~0b11, VEC_DB)
    r = check(ev, dbg)["dr7_echo"]
    assert r.violations == 1 and r.examples[0].index == k
    # free-running: the step past the exec breakpoint is recorded when it hits data
    dbg2 = make_debug(exec_bp=True, data_bp=True)
    ev2 = [(EXEC_BP, CLEAN | B0, DR7_BPS, VEC_DB), (0x7C0E, CLEAN | BS | B1, DR7_BPS & ~0b11, VEC_DB)]
    assert_clean(check(ev2, dbg2), skipped={"step_completeness"})
    # ... and the step past GD runs without GD
    dbg3 = make_debug(general_detect=True, data_bp=True)
    dr7 = dbg3.dr7
    ev3 = [(MOVDR, CLEAN | BD, dr7, VEC_DB), (MOVDR + 3, CLEAN | BS | B1, dr7 & ~GD, VEC_DB)]
    assert_clean(check(ev3, dbg3), skipped={"step_completeness"})


def test_raw_debugreg_configuration():
    # GuestDebug(raw_debugreg=(dr0, dr1, dr2, dr3, dr7)): no hw_breakpoints list
    dbg = make_debug(single_step=True, dr7=DR7_BPS)
    dbg.raw_debugreg = (EXEC_BP, DATA_ADDR, 0, 0, DR7_BPS)
    ev = ss_events(make_debug(single_step=True, exec_bp=True, data_bp=True))
    assert_clean(check(ev, dbg))


def test_injected_events_allow_discontinuity():
    dbg = make_debug(single_step=True, sw_bp=True)
    ev = ss_events(dbg)
    k = _index(ev, lambda e: e[3] == VEC_BP)
    # the tracer re-injects the #BP: the guest's handler (not in the image) runs next
    ev.insert(k + 1, (0x9000, CLEAN | BS, DR7_FIXED, VEC_DB))
    rep = check(ev, dbg)
    assert rep["step_completeness"].violations == 1
    assert rep["step_completeness"].examples[0].index == k + 1
    dbg.inject_bp = True
    rep = check(ev, dbg)
    assert rep["step_completeness"].status == "pass"
    assert "undecodable" in rep["step_completeness"].reason


def _many_defects(vcpus: int):
    """A trace with INT3 exits, several vCPUs and a bit of every defect."""
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    per = []
    for v in range(vcpus):
        ev = ss_events(dbg, passes=3)[3 * v:]
        f = _index(ev, lambda e: e[1] == CLEAN | B0)
        for k in range(f + 1, f + 3):
            ev[k] = (ev[k][0], ev[k][1] | B0) + ev[k][2:]  # accumulation
        k = _index(ev, lambda e: e[0] == 0x7C11, nth=2)
        ev[k] = ev[k][:3] + (VEC_BP,)  # wrong vector
        ev[30] = (ev[30][0], 0xFFFF5FF0) + ev[30][2:]  # fixed bit
        k = _index(ev, lambda e: e[0] == 0x7C21, nth=1)
        ev[k] = ev[k][:2] + (0x400, VEC_DB)  # dr7
        del ev[_index(ev, lambda e: e[0] == 0x7C14, nth=4)]  # lost step
        per.append([e + (v,) for e in ev])
    out = []
    for i in range(max(map(len, per))):
        for v in range(vcpus):
            if i < len(per[v]):
                out.append(per[v][i])
    return out, dbg


@pytest.mark.parametrize("vcpus", [1, 3])
@pytest.mark.parametrize("chunk", [16, 17, 100])
def test_chunked_evaluation_is_exact(vcpus, chunk):
    ev, dbg = _many_defects(vcpus)
    t = trace_from(ev)
    args = (t.pc, t.dr6, t.dr7, t.exception, t.vcpu, t.seq)
    ref = analyze_columns(*args, debug=dbg, mode="real", memory=IMAGE, max_examples=4)
    got = analyze_columns(*args, debug=dbg, mode="real", memory=IMAGE, max_examples=4, chunk=chunk)
    assert not ref.ok
    assert got.to_dict()["rules"] == ref.to_dict()["rules"]
    assert {r.id for r in ref.failed} == {"dr6_fixed_bits", "dr6_cause", "dr6_no_accumulation",
                                          "exception_vector", "step_completeness"}
    assert ref["dr7_echo"].status == "info" and ref["dr7_echo"].violations == vcpus  # informational
    for r in ref.rules:
        idx = [v.index for v in r.examples]
        assert idx == sorted(idx)
    assert ref["step_completeness"].violations == vcpus
    assert ref["dr6_no_accumulation"].violations == 2 * vcpus
    assert ref["exception_vector"].violations == vcpus


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", ["3 vCPUs, mixed vectors", "1 vCPU, #DB only"])
def test_random_traces_do_not_crash_and_chunking_is_exact(seed, shape):
    rng = np.random.default_rng(seed)
    n = 3000
    pc = rng.choice(np.array([0x7C00 + k for k in range(0x23)] + [0x9000], dtype=np.uint64), n)
    dr6 = (np.uint64(CLEAN) | rng.choice(np.array([0, BS, B0, B1, BD, BS | B1, 1 << 15], dtype=np.uint64), n))
    dr6[rng.random(n) < 0.01] |= np.uint64(1 << 33)
    dr7 = rng.choice(np.array([DR7_BPS, DR7_FIXED, DR7_BPS | GD], dtype=np.uint64), n)
    exc = rng.choice(np.array([1, 1, 1, 3, 14], dtype=np.uint8), n)
    vcpu = rng.integers(0, 3, n).astype(np.uint16)
    seq = np.arange(n, dtype=np.uint64)
    seq[100:110] = seq[100:110][::-1].copy()  # not monotonic: forces the seq ordering
    if shape.startswith("1 vCPU"):
        vcpu[:] = 0
        exc[:] = 1
    for dbg in (make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True, general_detect=True),
                make_debug(exec_bp=True, sw_bp=True), make_debug(single_step=True)):
        ref = analyze_columns(pc, dr6, dr7, exc, vcpu, seq, debug=dbg, mode="real", memory=IMAGE)
        got = analyze_columns(pc, dr6, dr7, exc, vcpu, seq, debug=dbg, mode="real", memory=IMAGE, chunk=37)
        assert got.to_dict()["rules"] == ref.to_dict()["rules"]
        assert not ref.ok
        json.dumps(ref.to_dict())
        str(ref)


# --------------------------------------------------------------------------
# Report API
# --------------------------------------------------------------------------


def _failing_report() -> Report:
    dbg = make_debug(single_step=True, exec_bp=True)
    ev = ss_events(dbg, passes=3)
    for k in range(len(ev)):
        if ev[k][1] == CLEAN | BS:
            ev[k] = (ev[k][0], ev[k][1] | B0) + ev[k][2:]  # B0 everywhere: many violations
    return check(ev, dbg)


def test_report_api():
    rep = _failing_report()
    assert isinstance(rep, Report) and not rep.ok
    assert all(isinstance(r, RuleResult) for r in rep.rules)
    r = rep["dr6_cause"]
    assert r.status == "fail" and r.violations > 10 and len(r.examples) == 10
    assert all(isinstance(v, Violation) for v in r.examples)
    assert [v.index for v in r.examples] == sorted(v.index for v in r.examples)
    assert "dr6_cause" in rep and "nope" not in rep
    with pytest.raises(KeyError):
        rep["nope"]
    d = rep.to_dict()
    assert d["ok"] is False and d["events"] == rep.events
    assert {x["id"] for x in d["rules"]} == ALL_RULES
    ex = next(x for x in d["rules"] if x["id"] == "dr6_cause")["examples"][0]
    assert set(ex) == {"index", "seq", "vcpu", "pc", "field", "expected", "observed", "message"}
    assert ex["pc"].startswith("0x") and ex["observed"].startswith("0x")
    assert json.loads(rep.to_json()) == json.loads(json.dumps(d))
    text = str(rep)
    assert "FAIL" in text and "dr6_cause" in text and "more" in text
    for rid in ALL_RULES:
        assert rid in text


def test_report_rich():
    from rich.console import Console
    from rich.table import Table

    rep = _failing_report()
    table = rep.to_rich_table()
    assert isinstance(table, Table) and table.row_count == len(rep.rules)
    assert isinstance(rep.__rich__(), Table)
    console = Console(record=True, width=200)
    console.print(rep)
    out = console.export_text()
    assert "dr6_no_accumulation" in out and "fail" in out


def test_rule_selection_and_no_debug():
    dbg = make_debug(single_step=True)
    t = trace_from(ss_events(dbg))
    rep = analyze(t, dbg, rules=["dr7_echo", "dr6_fixed_bits"])
    assert [r.id for r in rep.rules] == ["dr7_echo", "dr6_fixed_bits"]
    with pytest.raises(ValueError):
        analyze(t, dbg, rules=["bogus"])
    rep = analyze(t)  # no configuration anywhere
    assert rep["dr6_fixed_bits"].status == "pass"
    assert rep["exception_vector"].status == "pass"
    assert rep["dr6_cause"].status == "skipped"
    assert rep["dr6_cause"].reason == "no debug configuration"


def test_empty_trace():
    dbg = make_debug(single_step=True)
    rep = analyze(trace_from([]), dbg, memory=IMAGE)
    assert rep.ok and rep.events == 0
    assert all(r.status == "skipped" for r in rep.rules)


def test_analyze_columns_matches_analyze():
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    t = trace_from(ss_events(dbg))
    a = analyze(t, dbg, memory=IMAGE)
    b = analyze_columns(t.pc, t.dr6, t.dr7, t.exception, t.vcpu, t.seq,
                        debug=dbg, mode="real", memory=IMAGE)
    assert a.to_dict()["rules"] == b.to_dict()["rules"]


def test_code_image_reads():
    img = CodeImage([(0x1000, b"\x01\x02"), (0x1002, b"\x03"), (0x2000, b"\x04")])
    assert img.read(0x1000, 3) == b"\x01\x02\x03"
    assert img.read(0x2000, 1) == b"\x04"
    with pytest.raises(ValueError):
        img.read(0x1001, 4)
    with pytest.raises(ValueError):
        img.read(0xFFF, 1)


def test_unsorted_seq_is_ordered_per_vcpu():
    dbg = make_debug(single_step=True)
    ev = ss_events(dbg)
    t = trace_from(ev)
    perm = np.random.default_rng(1).permutation(len(ev))
    for name in ("pc", "dr6", "dr7", "exception", "vcpu", "seq"):
        setattr(t, name, getattr(t, name)[perm])
    assert_clean(analyze(t, dbg, memory=IMAGE))


# --------------------------------------------------------------------------
# Throughput (plain function; move to benches/ - no timing assertion here)
# --------------------------------------------------------------------------

COLUMN_RULES = ["dr6_fixed_bits", "dr6_cause", "dr6_no_accumulation", "exception_vector",
                "pc_semantics", "dr7_echo"]


def synthetic_columns(n: int):
    """n events: the single-step + exec/data/sw breakpoint loop, tiled."""
    dbg = make_debug(single_step=True, exec_bp=True, data_bp=True, sw_bp=True)
    ev = ss_events(dbg, passes=4)
    reps = -(-n // len(ev))
    cols = [np.tile(np.array([e[k] for e in ev], dtype=dt), reps)[:n]
            for k, dt in enumerate((np.uint64, np.uint64, np.uint64, np.uint8))]
    return cols, dbg


def measure_throughput(n: int = 20_000_000, repeat: int = 3) -> dict[str, float]:
    """Events/s of the column rules (no decoding) and of all rules with code bytes."""
    (pc, dr6, dr7, exc), dbg = synthetic_columns(n)
    vcpu = np.zeros(n, dtype=np.uint16)
    seq = np.arange(n, dtype=np.uint64)
    out = {}
    for label, kw in (("column_rules", {"rules": COLUMN_RULES}),
                      ("all_rules_with_memory", {"memory": IMAGE})):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            rep = analyze_columns(pc, dr6, dr7, exc, vcpu, seq, debug=dbg, mode="real", **kw)
            best = min(best, time.perf_counter() - t0)
            assert rep.ok, str(rep)
        out[label] = n / best
    return out


def test_throughput_function_runs():
    res = measure_throughput(n=50_000, repeat=1)
    assert set(res) == {"column_rules", "all_rules_with_memory"}
    assert all(v > 0 for v in res.values())


if __name__ == "__main__":  # pragma: no cover
    for k, v in measure_throughput().items():
        print(f"{k:24s} {v / 1e6:8.1f} M events/s")
