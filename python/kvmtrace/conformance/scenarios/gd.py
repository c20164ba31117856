"""General detect: DR7.GD makes every MOV DRn fault."""

from __future__ import annotations

from dataclasses import replace

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    DB_VECTOR,
    DR6_BD,
    DR6_CLEAN,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    Scenario,
    guest_exit,
    static,
)

GD_CITE = (
    "SDM §18.3.1.3 General-Detect Exception Condition (DR7.GD: a MOV to or from any DRn faults with "
    "DR6.BD; pc at the MOV), §18.2.4 (GD is bit 13 of DR7); APM §13.1.1.3 (BD), §13.1.1.4 (GD); KVM "
    "api.rst KVM_SET_GUEST_DEBUG (debugreg[7] with GD), KVM_EXIT_DEBUG (dr6 = 0xffff0ff0|BD, dr7 = the "
    "programmed DR7 0x2400)."
)


def run_gd_bit(g: GuestRun) -> None:
    debug = GuestDebug(general_detect=True)
    g.set_debug(debug)
    gd = Expect("debug", exception=DB_VECTOR, dr6=DR6_CLEAN | DR6_BD, dr7=debug.dr7, kind="gd")
    for probe, what in (("gd_read", "MOV from DR0"), ("gd_write", "MOV to DR1")):
        if g.stopped is None:
            g.set_pc(g.sym(probe))
        g.expect_sequence([(f"{what} faults", replace(gd, pc=g.sym(probe)))])
    # Skipping the faulting MOV (as a debugger would), the guest goes on.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("gd_done"))
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("gd_bit", "DR7.GD: MOV from/to DRn faults with DR6.BD", static("gd_bit"), run_gd_bit, GD_CITE),
)
