"""Host instruction breakpoints meeting each other, single-step, and RFLAGS.RF."""

from __future__ import annotations

from dataclasses import replace

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import DB_VECTOR, DR6_B, DR6_CLEAN, DR7_FIXED_1, RFLAGS_RF, Dr7
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    SCENARIO_COUNTER,
    SYNC,
    Scenario,
    bp_hit,
    guest_exit,
    hw_bp,
    static,
    step_trap,
)

MULTI_CITE = (
    "SDM §18.2.3 (B0-B3: each is set when its breakpoint condition was met), §18.3.1.1 (instruction "
    "breakpoints: faults, pc at the instruction); APM §13.1.1.3; KVM api.rst KVM_GUESTDBG_USE_HW_BP, "
    "KVM_EXIT_DEBUG. Breakpoints on one instruction are detected together: one exit, every Bn."
)


def exec_slots(addr: int, slots: tuple[int, ...]) -> GuestDebug:
    """Instruction breakpoints at ``addr`` in each of ``slots``."""
    dr = [addr if s in slots else 0 for s in range(4)]
    dr7 = DR7_FIXED_1
    for s in slots:
        dr7 |= Dr7.slot_bits(s, "exec", 1)
    return GuestDebug(raw_debugreg=(*dr, dr7))


def run_multi_bp_same_insn(g: GuestRun) -> None:
    at = g.sym("m_x")
    for slots in ((0, 1), (0, 1, 2, 3), (1, 3)):
        debug = exec_slots(at, slots)
        g.set_debug(debug)
        if g.stopped is None:
            g.set_pc(g.sym("_start"))
        dr6 = DR6_CLEAN
        for s in slots:
            dr6 |= DR6_B[s]
        names = "+".join(f"DR{s}" for s in slots)
        g.expect_sequence([(f"{names} on one instruction: one exit with every Bn",
                            Expect("debug", exception=DB_VECTOR, pc=at, dr6=dr6, dr7=debug.dr7, kind="multi_bp"))])
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(at)
    g.expect("the guest runs on", SYNC)
    g.expect("guest completes", guest_exit())


STEP_AND_BP_CITE = (
    "SDM Vol.3A §6.9 (a trap of the previous instruction - the single-step - is serviced before the "
    "instruction breakpoint fault of the next, which is detected when that instruction is fetched), "
    "§18.3.1.1, §18.3.1.4, §18.2.3 (each #DB reports its own conditions); APM §13.1.1.3; KVM api.rst "
    "KVM_SET_GUEST_DEBUG (SINGLESTEP with USE_HW_BP)."
)


def run_exec_bp_and_step(g: GuestRun) -> None:
    x = g.sym("s_x")
    debug = GuestDebug(single_step=True, raw_debugreg=(x, 0, 0, 0, DR7_FIXED_1 | Dr7.slot_bits(0, "exec", 1)))
    g.set_debug(debug)
    g.expect_sequence([
        ("step", step_trap(g.sym("s_1"), dr7=debug.dr7)),
        ("the step lands on the breakpoint's instruction: BS only", step_trap(x, dr7=debug.dr7, kind="bp_and_step")),
    ])
    g.expect_sequence([("then the breakpoint faults there: B0 only", bp_hit(x, 0, debug, kind="bp_and_step"))])
    # A debugger steps over its breakpoint with the breakpoint removed.
    step = GuestDebug(single_step=True)
    g.set_debug(step)
    g.expect_sequence([("stepped past it: BS only", step_trap(g.sym("s_end"), dr7=step.dr7, kind="bp_and_step"))])
    g.set_debug(None)
    g.expect("the guest runs on", SYNC)
    g.expect("guest completes", guest_exit())


RF_CITE = (
    "SDM §18.3.1.1 ('the processor ignores instruction breakpoints for the next instruction when RF is set'; "
    "a debugger resumes a faulting instruction breakpoint with RF=1), Vol.1 §3.4.3.3 (RF is cleared after "
    "the instruction completes); APM §13.1.1.3 and Vol.2 §3.1.6; KVM api.rst KVM_SET_REGS (rflags), "
    "KVM_GUESTDBG_USE_HW_BP."
)


def run_rf_resume(g: GuestRun) -> None:
    g.expect("the loop is set up", SYNC)
    x = g.sym("r_x")
    debug = hw_bp(0, x, "exec")
    g.set_debug(debug)

    def iteration() -> dict[str, int]:
        return {"iteration": g.read_uint(SCENARIO_COUNTER, 1)}

    first = Expect("debug", exception=DB_VECTOR, pc=x, dr6=DR6_CLEAN | DR6_B[0], dr7=debug.dr7, kind="rf_resume")
    hit = g.expect_sequence([("the breakpoint in the first iteration", replace(first, guest={"iteration": 0}),
                              iteration)])
    if hit[0] is not None:
        g.set_reg("rflags", g.m.regs["rflags"] | RFLAGS_RF)
    g.expect_sequence([("resumed with RF: the next report is the second iteration",
                        replace(first, guest={"iteration": 1}), iteration)])
    g.set_debug(None)
    if g.stopped is None:
        g.set_reg("rflags", g.m.regs["rflags"] | RFLAGS_RF)
    g.expect_sequence([("without the breakpoint the loop completes",
                        Expect("hlt", guest={"iteration": 2}, kind="rf_resume"), iteration)])
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("multi_bp_same_insn", "DR0+DR1 (and DR0-DR3) on one instruction: one exit, B0|B1 (B0-B3)",
             static("multi_bp_same_insn"), run_multi_bp_same_insn, MULTI_CITE),
    Scenario("exec_bp_and_step", "a breakpoint and single-step on one instruction: BS, then Bn, then BS",
             static("exec_bp_and_step"), run_exec_bp_and_step, STEP_AND_BP_CITE),
    Scenario("rf_resume", "resuming with RFLAGS.RF does not re-report the instruction breakpoint",
             static("rf_resume"), run_rf_resume, RF_CITE),
)
