"""#DB around MOV SS / POP SS: with INT1, with general detect, with a watchpoint and INT n, and an
instruction breakpoint right after the MOV SS (where Intel and AMD differ)."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    BP_VECTOR,
    DB_VECTOR,
    DR6_B,
    DR6_BD,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    BP_RETURN,
    COUNT_BP,
    SYNC,
    Scenario,
    bp_hit,
    db_log,
    expect_db_log,
    guest_exit,
    hw_bp,
    static,
    step_trap,
)

BS = DR6_CLEAN | DR6_BS
HANDLERS = {DB_VECTOR: "db_recorder"}

MOV_SS_ICEBP_CITE = (
    "SDM Vol.3A §6.8.3 (MOV SS inhibits the single-step trap until after the next instruction), Vol.2B INT1 "
    "and §18.3.1 Table 18-2 (INT1 is a trap-like #DB with no DR6 condition: DR6 = 0xffff0ff0), §18.3.1.4; "
    "APM §8.2.2; kvm-unit-tests x86/debug.c singlestep_with_movss_blocking_and_icebp and 'icebp' (DR6 "
    "always empty on an INT1 #DB); KVM api.rst KVM_GUESTDBG_SINGLESTEP."
)


def run_mov_ss_icebp(g: GuestRun) -> None:
    expect_db_log(g, "guest TF", [
        ("INT1 in the MOV SS shadow: a trap, DR6 clean (no BS)", g.sym("a_ice2"), DR6_CLEAN, "icebp"),
        ("the second INT1: a trap, DR6 clean", g.sym("a_1"), DR6_CLEAN, "icebp"),
        *((f"single-step {n}", g.sym(f"a_{n + 1}"), BS, "step") for n in (1, 2, 3)),
    ], count_kind="mov_ss_guest")
    g.expect("part b: set up", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("host step: no trap after the shadowed MOV SS; INT1 exits as a trap with DR6 clean (no BS)",
         Expect("debug", exception=DB_VECTOR, pc=g.sym("b_1"), dr6=DR6_CLEAN, dr7=DR7_FIXED_1, kind="icebp")),
        ("host step: stepping goes on after INT1", step_trap(g.sym("b_2"))),
    ])
    g.set_debug(None)
    g.expect("part b done", SYNC)
    g.expect("guest completes", guest_exit())


MOV_SS_GD_CITE = (
    "SDM §18.3.1.3 (general detect: a fault, pc at the MOV DRn, DR6.BD; the processor clears DR7.GD when it "
    "delivers it), Vol.3A §6.8.3 (MOV SS blocking does not hold back faults), §18.3.1.4; APM §13.1.1.4; "
    "kvm-unit-tests x86/debug.c singlestep_with_movss_blocking_and_dr7_gd; KVM api.rst KVM_SET_GUEST_DEBUG "
    "(debugreg[7] with GD), KVM_EXIT_DEBUG."
)


def run_mov_ss_gd(g: GuestRun) -> None:
    expect_db_log(g, "guest GD + TF", [
        ("the MOV to DR6 faults in the MOV SS shadow (pc at it, BD)", g.sym("a_gd"), DR6_CLEAN | DR6_BD, "guest_gd"),
        ("single-step after the MOV runs", g.sym("a_1"), BS, "step"),
        *((f"single-step {n}", g.sym(f"a_{n}"), BS, "step") for n in (2, 3, 4)),
    ], count_kind="mov_ss_guest")
    g.expect("part b: set up", SYNC)
    debug = GuestDebug(single_step=True, general_detect=True)
    g.set_debug(debug)
    g.expect_sequence([("host GD + step: no trap after the shadowed MOV SS; the MOV to DR6 faults with BD",
                        Expect("debug", exception=DB_VECTOR, pc=g.sym("b_gd"), dr6=DR6_CLEAN | DR6_BD,
                               dr7=debug.dr7, kind="gd"))])
    if g.stopped is None:
        g.set_pc(g.sym("b_1"))  # skip the faulting MOV, as a debugger would
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([("host step: stepping goes on", step_trap(g.sym("b_2")))])
    g.set_debug(None)
    g.expect("part b done", SYNC)
    g.expect("guest completes", guest_exit())


MOV_SS_WATCHPOINT_CITE = (
    "SDM Vol.3A §6.8.3 (a data breakpoint on the MOV SS load is held pending until after the next "
    "instruction), §18.3.1.2, Vol.2B INT n/INT3/INT1; APM §8.2.2; kvm-unit-tests x86/debug.c 'MOV SS + "
    "watchpoint + ICEBP' (one #DB), '+ int $1' (the #DB handler twice), '+ INT3' (one #DB, one #BP); "
    "CVE-2018-1087 (KVM: pending #DB after MOV SS with an INT)."
)


def run_mov_ss_watchpoint(g: GuestRun) -> None:
    g.expect_sequence([("watchpoint + INT1: one #DB, after the INT1",
                        Expect("hlt", kind="mov_ss_guest", guest={"count_db": 1, "db0_return": g.sym("w_a_end")}),
                        lambda: {k: v for k, v in db_log(g, 1).items() if k != "db0_dr6"})])
    g.expect_sequence([("watchpoint + INT 1: the #DB handler runs twice",
                        Expect("hlt", kind="mov_ss_guest", guest={"count_db": 2}),
                        lambda: {"count_db": db_log(g, 0)["count_db"]})])
    g.expect_sequence([("watchpoint + INT3: one #DB and one #BP, #BP returning after the INT3",
                        Expect("hlt", kind="mov_ss_guest",
                               guest={"count_db": 1, "count_bp": 1, "bp_return": g.sym("w_c_end")}),
                        lambda: {"count_db": db_log(g, 0)["count_db"], "count_bp": g.read_uint(COUNT_BP, 1),
                                 "bp_return": g.read_slot(BP_RETURN)})])
    g.expect("guest completes", guest_exit())


CODE_BP_CITE = (
    "SDM Vol.3A §6.8.3 (Intel: MOV SS / POP SS blocking inhibits instruction breakpoints on the next "
    "instruction); APM §8.2.2 and §13.1.1.3 (AMD: the breakpoint is reported); kvm-unit-tests "
    "x86/emulator.c test_mov_pop_ss_code_db ('On Intel, code #DBs are inhibited when MOV/POP SS blocking is "
    "active': 0 #DB on Intel, 1 on AMD); KVM api.rst KVM_GUESTDBG_USE_HW_BP. The CPU vendor picks the "
    "expectation."
)


def run_code_bp_after_mov_ss(g: GuestRun) -> None:
    reported = g.by_vendor(intel=False, amd=True, why="a code breakpoint on the instruction after MOV SS / POP "
                           "SS: Intel inhibits it (0 #DB), AMD reports it (1 #DB)")

    def guest_part(label: str, after: str) -> None:
        entries = [("reported at it, DR6.B0", g.sym(after), DR6_CLEAN | DR6_B[0], "code_bp_after_mov_ss")]
        expect_db_log(g, label, entries if reported else [], count_kind="code_bp_after_mov_ss")

    guest_part("the guest's breakpoint after MOV SS", "g_after")
    if g.has("p_after"):
        guest_part("the guest's breakpoint after POP SS", "p_after")
    g.expect("part b: set up", SYNC)
    debug = hw_bp(0, g.sym("h_after"), "exec")
    g.set_debug(debug)
    if reported:
        g.expect_sequence([("the host's breakpoint after MOV SS is reported",
                            bp_hit(g.sym("h_after"), 0, debug, kind="code_bp_after_mov_ss"))])
        g.set_debug(None)
    g.expect("part b: " + ("the guest runs on" if reported else "the host's breakpoint after MOV SS is inhibited"),
             Expect("hlt", kind="code_bp_after_mov_ss"))
    g.set_debug(None)
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("mov_ss_icebp", "MOV SS then INT1 with TF: trap-like #DBs with a clean DR6, guest and host",
             static("mov_ss_icebp"), run_mov_ss_icebp, MOV_SS_ICEBP_CITE, handlers=HANDLERS),
    Scenario("mov_ss_gd", "MOV SS then MOV DR6 with DR7.GD and TF: the GD fault is not held back",
             static("mov_ss_gd"), run_mov_ss_gd, MOV_SS_GD_CITE, handlers=HANDLERS),
    Scenario("mov_ss_watchpoint", "a watchpoint on the MOV SS load, then INT1 / INT 1 / INT3 (CVE-2018-1087)",
             static("mov_ss_watchpoint"), run_mov_ss_watchpoint, MOV_SS_WATCHPOINT_CITE,
             handlers={**HANDLERS, BP_VECTOR: "bp_recorder"}),
    Scenario("code_bp_after_mov_ss", "an instruction breakpoint right after MOV SS / POP SS (Intel: none, AMD: one)",
             static("code_bp_after_mov_ss"), run_code_bp_after_mov_ss, CODE_BP_CITE, handlers=HANDLERS),
)
