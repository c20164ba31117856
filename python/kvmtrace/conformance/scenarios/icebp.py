"""INT1 (ICEBP, opcode 0xF1)."""

from __future__ import annotations

from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    DB_VECTOR,
    DR6_CLEAN,
    DR7_FIXED_1,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    Scenario,
    static,
    use_hw_without_breakpoints,
)

ICEBP_CITE = (
    "SDM Vol.2B INT n/INTO/INT3/INT1 (INT1, opcode F1, generates a #DB) and §18.3.1 Table 18-2 (INT1 is a "
    "trap: pc after the F1) with no DR6 condition bit set (DR6 = 0xffff0ff0 when it was clean); APM §8.2.2 "
    "(ICEBP); KVM api.rst KVM_SET_GUEST_DEBUG (with KVM_GUESTDBG_USE_HW_BP every #DB exits to the host) and "
    "KVM_EXIT_DEBUG. Part b: without host debugging the guest's own #DB handler gets it."
)


def run_icebp(g: GuestRun) -> None:
    # (a) no host debugging: the guest's own #DB handler gets INT1 as a trap.
    g.expect_sequence([
        ("the guest's #DB handler sees INT1 as a trap with a clean DR6",
         Expect("hlt", guest={"vector": DB_VECTOR, "dr6": DR6_CLEAN, "return_address": g.sym("ice1_end")},
                kind="icebp"),
         lambda: {"vector": g.read_uint(0x1010, 1), "dr6": g.read_dr6(0x1018), "return_address": g.read_slot(0x1020)}),
    ])
    # (b) with KVM_GUESTDBG_USE_HW_BP the #DB exits to the host instead.
    g.m.write(0x1010, b"\0")
    g.set_debug(use_hw_without_breakpoints())
    g.expect_sequence([
        ("INT1 exits to the host as a trap with no cause bits",
         Expect("debug", exception=DB_VECTOR, pc=g.sym("ice2_end"), dr6=DR6_CLEAN, dr7=DR7_FIXED_1,
                kind="icebp")),
    ])
    g.set_debug(None)
    g.expect_sequence([("the guest goes on after the host's INT1 exit; its handler is not entered",
                        Expect("hlt", guest={"handler_vector": 0}, kind="icebp"),
                        lambda: {"handler_vector": g.read_uint(0x1010, 1)})])

FAMILY = (
    Scenario("icebp", "INT1 (ICEBP) as a #DB trap with no DR6 cause, to the guest and to the host",
             static("icebp"), run_icebp, ICEBP_CITE, handlers={1: "db_handler"}),
)
