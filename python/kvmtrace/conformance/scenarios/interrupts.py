"""Interrupts while single-stepping, with KVM's in-kernel irqchip (``Machine(irqchip=True)``):
emulated instructions, BLOCKIRQ with a pending interrupt, STI; HLT woken by the LAPIC timer.

These guests sync through the sync port: with the in-kernel LAPIC, HLT waits in the
kernel. No step expectation spans one of those sync OUTs (the step trap after an OUT
that exits to userspace is a separate scenario, step_across_pio).
"""

from __future__ import annotations

from dataclasses import replace

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import DB_VECTOR, DR6_BS, DR6_CLEAN, DR7_FIXED_1
from kvmtrace.conformance.model import Expect, Observation
from kvmtrace.conformance.scenarios.common import (
    COUNT_IRQ,
    PSYNC,
    Scenario,
    guest_exit,
    static,
    step_trap,
)

#: The vector of the guests' LAPIC interrupts (IRQ_HANDLER in common.S).
IRQ_VECTOR = 0x40

STEP_EMULATED_CITE = (
    "SDM §18.3.1.4 (a trap after every instruction); KVM api.rst KVM_GUESTDBG_SINGLESTEP; selftests "
    "x86/debug_regs.c (CPUID, RDMSR/WRMSR of MSR_IA32_TSC_DEADLINE: 'verify that KVM's fastpath handler exits "
    "to userspace due to single-step being enabled'); KVM commit f7f39c50edb9; kvm-unit-tests x86/debug.c "
    "singlestep_emulated_instructions (CPUID, IN)."
)
EMULATED = {"e3": "CPUID", "e5": "RDMSR IA32_APIC_BASE", "e9": "WRMSR IA32_TSC_DEADLINE (fastpath)",
            "e10": "IN from the in-kernel PIC", "e11": "OUT to the in-kernel PIC",
            "e12": "IN from the PIT speaker port"}


def run_step_emulated(g: GuestRun) -> None:
    g.expect("the guest masked the PIC", PSYNC)
    g.set_debug(GuestDebug(single_step=True))
    items = []
    for n in range(1, 14):
        label = f"e{n}"
        what = EMULATED.get(label)
        items.append((f"step over {what}" if what else f"step to {label}",
                      step_trap(g.sym(label), kind="step_emulated" if what else "step")))
    g.expect_sequence(items)
    g.set_debug(None)
    g.expect("the final sync point", PSYNC)
    g.expect("guest completes", guest_exit())


BLOCKIRQ_CITE = (
    "KVM api.rst KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_BLOCKIRQ: 'avoid injecting interrupts/NMIs/SMIs' while "
    "single-stepping); selftests x86/debug_regs.c (a pending self-IPI is not handled while stepping with "
    "BLOCKIRQ); SDM Vol.3A §6.8.3 (STI shadow: the interrupt is taken after the next instruction), §6.9 "
    "(a single-step trap of the previous instruction is serviced before an external interrupt), §10.12 "
    "(x2APIC self IPI); APM §8.2.2."
)


def stretch_check(g: GuestRun, label: str, exp: Expect, observed: list[Observation], index: int) -> None:
    """Check the ``index``-th exit of a collected stretch: ``not_reached`` if the stretch ended on an exit
    that stopped the vCPU before it, ``missing`` if it just ended."""
    if index < len(observed):
        g.check(label, exp, observed[index])
    elif g.stopped is not None:
        g.check(label, exp, Observation("not_reached", note=f"the vCPU stopped earlier: {g.stopped}"))
    else:
        seen = ", ".join(f"{o.reason}@{g.where(o.pc)}" for o in observed)
        g.check(label, exp, Observation("missing", note=f"the exits were: {seen}"))


def run_blockirq_pending_irq(g: GuestRun) -> None:
    g.expect("the self-IPI is pending", PSYNC)
    g.set_debug(GuestDebug(single_step=True, block_irq=True))
    g.expect_sequence([
        ("BLOCKIRQ: step after STI", step_trap(g.sym("a_1"), kind="irq_blockirq")),
        ("BLOCKIRQ: step after the shadowed instruction", step_trap(g.sym("a_2"), kind="irq_blockirq")),
        ("BLOCKIRQ: the next step does not enter the handler", step_trap(g.sym("a_3"), kind="irq_blockirq")),
        ("BLOCKIRQ: nor the one after; no handler ran",
         Expect("debug", exception=DB_VECTOR, pc=g.sym("a_4"), dr6=DR6_CLEAN | DR6_BS, dr7=DR7_FIXED_1,
                guest={"count_irq": 0}, kind="irq_blockirq"),
         lambda: {"count_irq": g.read_uint(COUNT_IRQ, 1)}),
    ])
    g.set_debug(None)
    g.expect_sequence([("without BLOCKIRQ the pending interrupt is taken at once",
                        Expect("sync", guest={"count_irq": 1}, kind="irq_blockirq"),
                        lambda: {"count_irq": g.read_uint(COUNT_IRQ, 1)})])
    g.expect("the second self-IPI is pending", PSYNC)
    g.set_debug(GuestDebug(single_step=True))
    end = g.sym("b_5")
    observed = g.collect(until_pc=end, max_events=48)
    handler = (g.sym("irq"), g.sym("irq_end") + 2)
    stretch_check(g, "no BLOCKIRQ: step after STI", step_trap(g.sym("b_1"), kind="irq_step"), observed, 0)
    stretch_check(g, "no BLOCKIRQ: step after the shadowed instruction (its trap comes before the interrupt)",
                  step_trap(g.sym("b_2"), kind="irq_step"), observed, 1)
    stretch_check(g, "no BLOCKIRQ: the next step lands in the handler",
                  Expect("debug", exception=DB_VECTOR, pc_in=handler, dr6=DR6_CLEAN | DR6_BS, dr7=DR7_FIXED_1,
                         note="irq", kind="irq_step"), observed, 2)
    g.check("no BLOCKIRQ: stepping returns from the handler to the code and reaches its end",
            Expect("debug", exception=DB_VECTOR, pc=end, dr6=DR6_CLEAN | DR6_BS, dr7=DR7_FIXED_1,
                   guest={"count_irq": 2}, kind="irq_step"),
            _with(last_exit(g, observed), count_irq=g.read_uint(COUNT_IRQ, 1)))
    g.set_debug(None)
    g.expect("the final sync point", PSYNC)
    g.expect("guest completes", guest_exit())


def last_exit(g: GuestRun, observed: list[Observation]) -> Observation:
    if observed and observed[-1].reason != "not_reached":
        return observed[-1]
    return Observation("not_reached", note=f"the vCPU stopped earlier: {g.stopped}")


def _with(obs: Observation, **guest: int) -> Observation:
    return replace(obs, guest={**obs.guest, **guest})


STI_HLT_CITE = (
    "SDM Vol.2A HLT (an interrupt resumes execution after HLT), STI, §18.3.1.4 and Vol.3A §6.9 (the trap "
    "after HLT is serviced before the interrupt that woke it), §10.5.4 (LAPIC timer); kvm-unit-tests "
    "x86/debug.c singlestep_with_sti_hlt (the step after HLT at the next instruction, then stepping goes on); "
    "KVM api.rst KVM_GUESTDBG_SINGLESTEP."
)


def sti_hlt_part(g: GuestRun, part: str, what: str) -> None:
    """Single-step STI; HLT of one part up to its sync point and check the way through the handler."""
    g.set_debug(GuestDebug(single_step=True))
    done = g.sym(f"{part}_done")
    observed = g.collect(until_pc=done, max_events=64)
    handler = (g.sym("irq"), g.sym("irq_end") + 2)
    stretch_check(g, f"{what}: step after STI, at HLT", step_trap(g.sym(f"{part}_hlt"), kind="sti_hlt"), observed, 0)
    stretch_check(g, f"{what}: the step trap after HLT, at the next instruction",
                  step_trap(g.sym(f"{part}_end"), kind="sti_hlt"), observed, 1)
    stretch_check(g, f"{what}: HLT waits for the interrupt, so the next step lands in the handler",
                  Expect("debug", exception=DB_VECTOR, pc_in=handler, dr6=DR6_CLEAN | DR6_BS, dr7=DR7_FIXED_1,
                         note="irq", kind="sti_hlt_wake"), observed, 2)
    g.check(f"{what}: stepping returns from the handler and reaches the sync point",
            step_trap(done, kind="sti_hlt"), last_exit(g, observed))
    g.set_debug(None)
    g.expect_sequence([(f"{what}: the handler ran once", Expect("sync", guest={"count_irq": 1}, kind="sti_hlt"),
                        lambda: {"count_irq": g.read_uint(COUNT_IRQ, 1)})])
    g.m.write(COUNT_IRQ, b"\0")


def run_sti_hlt_timer(g: GuestRun) -> None:
    g.run_timeout = 1.0  # a stuck vCPU is the likely failure here: find it quickly (the timer is 2 ms)
    g.expect("the timer's interrupt is pending", PSYNC)
    sti_hlt_part(g, "a", "pending timer")
    g.expect("the timer is started", PSYNC)
    sti_hlt_part(g, "b", "timer firing during HLT")
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("step_emulated", "single-step CPUID, RDMSR, WRMSR TSC_DEADLINE and in-kernel port I/O (irqchip)",
             static("step_emulated"), run_step_emulated, STEP_EMULATED_CITE, irqchip=True),
    Scenario("blockirq_pending_irq", "a pending self-IPI while stepping: BLOCKIRQ keeps it out, without it the "
             "step lands in the handler", static("blockirq_pending_irq"), run_blockirq_pending_irq, BLOCKIRQ_CITE,
             irqchip=True, handlers={IRQ_VECTOR: "irq"}),
    Scenario("sti_hlt_timer", "single-step STI; HLT woken by the LAPIC timer, through the handler and back",
             static("sti_hlt_timer"), run_sti_hlt_timer, STI_HLT_CITE, irqchip=True, handlers={IRQ_VECTOR: "irq"}),
)
