"""Single-stepping ordinary and KVM-emulated instructions."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import DB_VECTOR, DR6_BS, DR6_CLEAN
from kvmtrace.conformance.scenarios.common import (
    SYNC,
    Scenario,
    expect_db_log,
    guest_exit,
    static,
    step_trap,
)

SINGLE_STEP_CITE = (
    "SDM §18.3.1.4 Single-Step Exception Condition (trap after each instruction, DR6.BS), Vol.2 STI/CLI "
    "(STI's interrupt shadow does not block #DB); APM §13.1.1.3 (BS), §8.2.2; KVM api.rst KVM_SET_GUEST_DEBUG "
    "(KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_BLOCKIRQ) and KVM_EXIT_DEBUG. CPUID and RDMSR are emulated by KVM "
    "and must still produce their step exit."
)


def run_single_step(g: GuestRun, *, block_irq: bool) -> None:
    # Expectation: one KVM_EXIT_DEBUG per instruction, exception 1, pc at the next
    # instruction, dr6 = 0xffff0ff0|BS, dr7 = the DR7 in force (0x400: reset value,
    # no hardware breakpoints programmed).
    debug = GuestDebug(single_step=True, block_irq=block_irq)
    g.set_debug(debug)
    g.expect_sequence([(f"step to {label}", step_trap(g.sym(label), dr7=debug.dr7,
                                                      kind="step_emulated" if label in ("ss_3", "ss_5") else "step"))
                       for label in ("ss_1", "ss_2", "ss_3", "ss_4", "ss_5", "ss_6", "ss_end")])

STI_SHADOW_CITE = (
    "SDM Vol.2B STI ('the processor ... inhibits interrupts ... after STI'; debug exceptions are not "
    "inhibited), Vol.3A §6.8.3, §18.3.1.4 (the trap follows the instruction after the POPF that sets TF); "
    "APM §8.2.2; kvm-unit-tests x86/debug.c singlestep_with_sti_blocking ('STI blocking doesn't suppress "
    "#DBs'); KVM api.rst KVM_GUESTDBG_SINGLESTEP."
)


def run_sti_shadow(g: GuestRun) -> None:
    g.expect("setup", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("host step: CLI", step_trap(g.sym("a_sti"))),
        ("host step: the trap after STI comes at once (the shadow does not block #DB)", step_trap(g.sym("a_1"))),
        ("host step: the instruction in STI's shadow", step_trap(g.sym("a_2"))),
        ("host step: after it", step_trap(g.sym("a_3"))),
    ])
    g.set_debug(None)
    g.expect("part a done", SYNC)
    bs = DR6_CLEAN | DR6_BS
    expect_db_log(g, "guest TF", [("the trap after STI comes at once", g.sym("b_1"), bs, "step"),
                                  ("in STI's shadow", g.sym("b_2"), bs, "step"),
                                  ("after it", g.sym("b_3"), bs, "step")])
    g.expect("guest completes", guest_exit())


SET_REGS_CITE = (
    "KVM api.rst KVM_SET_REGS (rip is the guest's register state) and KVM_SET_GUEST_DEBUG "
    "(KVM_GUESTDBG_SINGLESTEP: a trap after every instruction the guest executes); SDM §18.3.1.4. A "
    "debugger that moves rip between steps must see the next trap after the instruction at the new rip."
)


def run_set_regs_then_step(g: GuestRun) -> None:
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([("first step", step_trap(g.sym("b")))])
    if g.stopped is None:
        g.set_pc(g.sym("e"))
    g.expect_sequence([
        ("after KVM_SET_REGS rip=e: the step follows e", step_trap(g.sym("f"), kind="step_set_regs")),
        ("and goes on from there", step_trap(g.sym("g_"), kind="step_set_regs")),
    ])
    if g.stopped is None:
        g.set_pc(g.sym("b"))
    g.expect_sequence([("after KVM_SET_REGS rip=b (backwards): the step follows b",
                        step_trap(g.sym("c"), kind="step_set_regs"))])
    g.set_debug(None)
    g.expect("the guest runs on from c", SYNC)
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("single_step", "single-step sti/xor/cpuid/mov/rdmsr/cli/nop with KVM_GUESTDBG_BLOCKIRQ",
             static("single_step"), lambda g: run_single_step(g, block_irq=True), SINGLE_STEP_CITE),
    Scenario("single_step_no_blockirq", "the single_step program and checks without BLOCKIRQ "
             "(no interrupt source exists here, so BLOCKIRQ changes nothing architectural)",
             static("single_step"), lambda g: run_single_step(g, block_irq=False), SINGLE_STEP_CITE),
    Scenario("sti_shadow", "the step trap after STI is not held back by its shadow (host step and guest TF)",
             static("sti_shadow"), run_sti_shadow, STI_SHADOW_CITE, handlers={DB_VECTOR: "db_recorder"}),
    Scenario("set_regs_then_step", "rip moved with KVM_SET_REGS between steps is followed",
             static("set_regs_then_step"), run_set_regs_then_step, SET_REGS_CITE),
)
