"""Software breakpoints and software interrupts: INT3 with KVM_GUESTDBG_USE_SW_BP; INT 1, INT 3, INT3,
INT1 under software breakpoints and single-step."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import BP_VECTOR, DB_VECTOR, DR6_CLEAN, DR7_FIXED_1
from kvmtrace.conformance.model import Expect, Observation
from kvmtrace.conformance.scenarios.common import (
    BP_RETURN,
    COUNT_BP,
    SYNC,
    Scenario,
    db_log,
    expect_db_log,
    guest_exit,
    static,
    step_trap,
)

SW_BP_CITE = (
    "KVM api.rst KVM_SET_GUEST_DEBUG: with KVM_GUESTDBG_USE_SW_BP 'software breakpoints are enabled in "
    "memory so we need to ensure breakpoint exceptions are correctly trapped and the KVM_EXIT_DEBUG is "
    "seen' - exception 3 (#BP, SDM §18.3.2, APM §8.2.4), pc = the INT3 itself (the exit happens instead of "
    "delivering the #BP, before the guest's rip moves past the INT3; the KVM selftest debug_regs.c checks "
    "the same). dr6/dr7 are not defined for #BP exits and not compared."
)


def run_sw_bp_int3(g: GuestRun) -> None:
    # Not intercepted, the INT3 reaches the guest's #BP handler, which ends the run (exit 0x41).
    at = g.sym("sw_bp")
    g.set_debug(GuestDebug(sw_breakpoints=[at]))
    g.expect("INT3 exits to the host", Expect("debug", exception=BP_VECTOR, pc=at, kind="sw_bp"))
    # The debugger resumes past its breakpoint: nothing may have been delivered to the guest.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("sw_bp_end"))
    g.expect("guest resumes after the INT3 without seeing #BP", guest_exit())

INT_VARIANTS_CITE = (
    "SDM Vol.2B INT n/INTO/INT3/INT1 (CD 01 and CD 03 are software interrupts through the IDT; CC is #BP; F1 "
    "is a #DB trap with no DR6 condition), Vol.3A §6.4.2; APM §8.2.2, §8.2.4; KVM api.rst KVM_SET_GUEST_DEBUG "
    "(USE_SW_BP intercepts #BP, i.e. INT3; SINGLESTEP intercepts #DB, so INT1 exits); kvm-unit-tests "
    "x86/debug.c ('#BP', 'icebp'). The guest's DR6 never shows a host condition."
)


def run_int_variants(g: GuestRun) -> None:
    clean = DR6_CLEAN
    g.expect("set up", SYNC)
    g.set_debug(GuestDebug(sw_breakpoints=[g.sym("a_cc")]))
    hit = g.expect_sequence([("software breakpoints: only the INT3 exits, after INT 1 and INT 3 reached the guest",
                              Expect("debug", exception=BP_VECTOR, pc=g.sym("a_cc"), kind="sw_bp"))])
    if hit[0] is not None:
        g.set_pc(g.sym("a_cce"))  # the debugger resumes after its breakpoint
        g.expect("software breakpoints: the guest runs on", SYNC)
        g.check_values("software breakpoints: INT 1 (CD 01) reached the guest's #DB handler, INT 3 (CD 03) its "
                       "#BP handler", {"count_db": 1, "db0_return": g.sym("a_i1e"), "db0_dr6": clean, "count_bp": 1,
                                       "bp_return": g.sym("a_i3e")},
                       {**db_log(g, 1), "count_bp": g.read_uint(COUNT_BP, 1), "bp_return": g.read_slot(BP_RETURN)},
                       kind="soft_int")
    expect_db_log(g, "software breakpoints, then INT1", [
        ("INT 1 at the guest's #DB handler", g.sym("a_i1e"), clean, "soft_int"),
        ("INT1 reaches it too (no host #DB interception with software breakpoints)", g.sym("a_f1e"), clean,
         "icebp")], count_kind="soft_int")
    g.set_debug(None)
    g.expect("part b: set up", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    end = g.sym("b_end")
    observed = g.collect(until_pc=end, max_events=96)
    icebp = next((o for o in observed if o.reason == "debug" and o.pc == g.sym("b_f1e")), None)
    g.check("single-step: INT1 exits to the host as a trap with DR6 clean",
            Expect("debug", exception=DB_VECTOR, pc=g.sym("b_f1e"), dr6=clean, dr7=DR7_FIXED_1, kind="icebp"),
            icebp or (observed[-1] if observed else Observation("missing")))
    last = observed[-1] if observed else Observation("missing")
    g.check("single-step reaches the end", step_trap(end), last)
    g.check_values("single-step: INT 1 reached the guest once, its DR6 clean (no host BS); INT 3 and INT3 its #BP "
                   "handler", {"count_db": 1, "db0_return": g.sym("b_i1e"), "db0_dr6": clean, "count_bp": 2,
                               "bp_return": g.sym("b_cce")},
                   {**db_log(g, 1), "count_bp": g.read_uint(COUNT_BP, 1), "bp_return": g.read_slot(BP_RETURN)},
                   kind="soft_int")
    g.set_debug(None)
    g.expect("part b done", SYNC)
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("sw_bp_int3", "INT3 with KVM_GUESTDBG_USE_SW_BP exits with #BP at the INT3",
             static("sw_bp_int3"), run_sw_bp_int3, SW_BP_CITE, handlers={BP_VECTOR: "bp_handler"}),
    Scenario("int_variants", "INT 1, INT 3, INT3 and INT1 under software breakpoints and single-step",
             static("int_variants"), run_int_variants, INT_VARIANTS_CITE,
             handlers={DB_VECTOR: "db_recorder", BP_VECTOR: "bp_recorder"}),
)
