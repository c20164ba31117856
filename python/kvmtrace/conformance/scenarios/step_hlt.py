"""Single-stepping across HLT."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.scenarios.common import (
    Scenario,
    static,
    step_trap,
)

STEP_HLT_CITE = (
    "SDM Vol.2A HLT ('an enabled interrupt ..., a debug exception, ... will resume execution') and §18.3.1.4 "
    "(the single-step trap follows the instruction: pc after HLT, DR6.BS); APM §8.2.2; KVM api.rst "
    "KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_SINGLESTEP: every instruction reports its step) and KVM_EXIT_HLT "
    "(with a userspace irqchip KVM may also report the halt: a KVM_EXIT_HLT before the step exit is "
    "accepted, a missing step exit is not)."
)


def run_step_hlt(g: GuestRun) -> None:
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to HLT", step_trap(g.sym("h"))),
        ("single-step trap after HLT", step_trap(g.sym("h_end"), kind="step_after_hlt")),
        ("stepping goes on after HLT", step_trap(g.sym("h_next"))),
    ], skip=("hlt",))
    if "hlt" in g.passed_exits:
        g.note("KVM reported KVM_EXIT_HLT before the step exit (accepted)")

FAMILY = (
    Scenario("step_hlt", "single-step across HLT", static("step_hlt"), run_step_hlt, STEP_HLT_CITE),
)
