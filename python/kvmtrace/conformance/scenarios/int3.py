"""Software breakpoints: INT3 with KVM_GUESTDBG_USE_SW_BP."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    BP_VECTOR,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    Scenario,
    guest_exit,
    static,
)

SW_BP_CITE = (
    "KVM api.rst KVM_SET_GUEST_DEBUG: with KVM_GUESTDBG_USE_SW_BP 'software breakpoints are enabled in "
    "memory so we need to ensure breakpoint exceptions are correctly trapped and the KVM_EXIT_DEBUG is "
    "seen' - exception 3 (#BP, SDM §18.3.2, APM §8.2.4), pc = the INT3 itself (the exit happens instead of "
    "delivering the #BP, before the guest's rip moves past the INT3; the KVM selftest debug_regs.c checks "
    "the same). dr6/dr7 are not defined for #BP exits and not compared."
)


def run_sw_bp_int3(g: GuestRun) -> None:
    at = g.sym("sw_bp")
    g.set_debug(GuestDebug(sw_breakpoints=[at]))
    g.expect("INT3 exits to the host", Expect("debug", exception=BP_VECTOR, pc=at, kind="sw_bp"))
    # The debugger resumes past its breakpoint: nothing may have been delivered to the guest.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("sw_bp_end"))
    g.expect("guest resumes after the INT3 without seeing #BP", guest_exit())

FAMILY = (
    Scenario("sw_bp_int3", "INT3 with KVM_GUESTDBG_USE_SW_BP exits with #BP at the INT3",
             static("sw_bp_int3"), run_sw_bp_int3, SW_BP_CITE),
)
