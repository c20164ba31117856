"""The guest's own DR6 and the dr6 of each exit: preserved, never accumulated."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    DB_VECTOR,
    DR6_B,
    DR6_BD,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    DATA_TARGET,
    SYNC,
    Scenario,
    bp_hit,
    hw_bp,
    static,
    step_trap,
)

GUEST_DR6 = DR6_CLEAN | DR6_B[1] | DR6_B[3]  # the guest's own value (0xffff0ffa): B1|B3

GUEST_DR6_CITE = (
    "SDM §18.2.3 (DR6 is software-writable; the processor sets cause bits only when it delivers a #DB to "
    "this software), APM §13.1.1.3; KVM api.rst KVM_SET_GUEST_DEBUG: host debug events exit to the host "
    "instead of reaching the guest, so the guest's DR6 must read back as it wrote it (0xffff0ffa), and "
    "each exit's dr6 holds only that exit's cause (BS, B0, B2) - not the guest's B1|B3."
)


def run_guest_dr6_preserved(g: GuestRun) -> None:
    # (a) the host single-steps the guest from its MOV to DR6 up to its sync point.
    g.set_debug(GuestDebug(single_step=True))
    stop = g.sym("a_sync")
    for n in range(1, 33):
        obs = g.run()
        step = Expect("debug", exception=DB_VECTOR, dr6=DR6_CLEAN | DR6_BS, dr7=DR7_FIXED_1, kind="dr6_exit")
        g.check(f"part a: step {n} reports only BS", step, obs)
        if obs.reason != "debug" or obs.pc == stop:
            break
    g.set_debug(None)
    g.expect_sequence([("part a: the guest reads back its own DR6 after host single-steps",
                        Expect("hlt", guest={"dr6": GUEST_DR6}, kind="guest_dr6"),
                        lambda: {"dr6": g.read_dr6(0x1000)})])
    # (b) a host data breakpoint fires between the guest's write and its read.
    debug = hw_bp(0, DATA_TARGET, "write", 1)
    g.set_debug(debug)
    g.expect_sequence([
        ("part b: host write breakpoint reports only B0", bp_hit(g.sym("wr_end"), 0, debug, kind="data_bp")),
        ("part b: the guest reads back its own DR6 after a host data breakpoint",
         Expect("hlt", guest={"dr6": GUEST_DR6}, kind="guest_dr6"), lambda: {"dr6": g.read_dr6(0x1008)}),
    ])
    # (c) a host instruction breakpoint fires between the guest's write and its read.
    debug = hw_bp(2, g.sym("xbp"), "exec")
    g.set_debug(debug)
    hit = g.expect_sequence([("part c: host instruction breakpoint reports only B2",
                              bp_hit(g.sym("xbp"), 2, debug))])
    g.set_debug(None)
    if hit[0] is not None:
        g.expect_sequence([("part c: the guest reads back its own DR6 after a host instruction breakpoint",
                            Expect("hlt", guest={"dr6": GUEST_DR6}, kind="guest_dr6"),
                            lambda: {"dr6": g.read_dr6(0x1010)})])


NO_ACCUM_CITE = (
    "SDM §18.2.3 and §18.3.1 (each #DB reports the conditions of that event; B0-B3 are updated per event), "
    "APM §13.1.1.3; KVM api.rst KVM_EXIT_DEBUG (debug.arch.dr6 describes this exit). A cause bit of an "
    "earlier exit must not reappear in a later one (the AMD DR6 accumulation the seed fix addresses)."
)


def run_exit_dr6_no_accumulation(g: GuestRun) -> None:
    step = GuestDebug(single_step=True)
    d1 = hw_bp(1, DATA_TARGET, "write", 1)
    g.set_debug(d1)
    g.expect_sequence([("DR1 write breakpoint: B1 only", bp_hit(g.sym("w1_end"), 1, d1, kind="data_bp")),
                       ("stretch end", SYNC)])
    g.set_debug(step)
    g.expect_sequence([("step after the data breakpoint: BS only", step_trap(g.sym("s1"))),
                       ("second step: BS only", step_trap(g.sym("s2")))])
    d2 = hw_bp(2, g.sym("x2"), "exec")
    g.set_debug(d2)
    hit = g.expect_sequence([("DR2 instruction breakpoint: B2 only", bp_hit(g.sym("x2"), 2, d2))])
    if hit[0] is not None:
        g.set_debug(step)
        g.expect_sequence([("step off the instruction breakpoint: BS only", step_trap(g.sym("x2_end")))])
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("x2_end"))
    g.expect("stretch end", SYNC)
    gd = GuestDebug(general_detect=True)
    g.set_debug(gd)
    g.expect_sequence([("general detect: BD only",
                        Expect("debug", exception=DB_VECTOR, pc=g.sym("g"), dr6=DR6_CLEAN | DR6_BD,
                               dr7=gd.dr7, kind="gd"))])
    g.set_debug(step)
    if g.stopped is None:
        g.set_pc(g.sym("g_next"))  # skip the MOV (and the SYNC after it), as a debugger would
    g.expect_sequence([("step after general detect: BS only", step_trap(g.sym("g_next_end")))])


FAMILY = (
    Scenario("guest_dr6_preserved", "the guest's DR6 survives host single-step and host breakpoints",
             static("guest_dr6_preserved"), run_guest_dr6_preserved, GUEST_DR6_CITE),
    Scenario("exit_dr6_no_accumulation", "each exit's dr6 carries only its own cause",
             static("exit_dr6_no_accumulation"), run_exit_dr6_no_accumulation, NO_ACCUM_CITE),
)
