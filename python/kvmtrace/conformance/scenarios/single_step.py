"""Single-stepping ordinary and KVM-emulated instructions."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.scenarios.common import (
    Scenario,
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

FAMILY = (
    Scenario("single_step", "single-step sti/xor/cpuid/mov/rdmsr/cli/nop with KVM_GUESTDBG_BLOCKIRQ",
             static("single_step"), lambda g: run_single_step(g, block_irq=True), SINGLE_STEP_CITE),
    Scenario("single_step_no_blockirq", "the single_step program and checks without BLOCKIRQ "
             "(no interrupt source exists here, so BLOCKIRQ changes nothing architectural)",
             static("single_step"), lambda g: run_single_step(g, block_irq=False), SINGLE_STEP_CITE),
)
