"""KVM_GUESTDBG_INJECT_DB / INJECT_BP."""

from __future__ import annotations

from collections.abc import Callable

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import EXIT_HANDLER, GuestRun
from kvmtrace.conformance.facts import (
    BP_VECTOR,
    DB_VECTOR,
    DR6_CLEAN,
)
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    SYNC,
    Scenario,
    static,
)

INJECT_CITE = (
    "KVM api.rst KVM_SET_GUEST_DEBUG: KVM_GUESTDBG_INJECT_DB / KVM_GUESTDBG_INJECT_BP 'inject DB/BP type "
    "exception' - delivered to the guest through its IDT/IVT vector {v} (SDM Vol.3A §6.12 exception "
    "delivery, APM §8.2.2/§8.2.4) at the instruction boundary where the vCPU stands (return address = that "
    "instruction). No debug condition occurred, so DR6 keeps the guest's own value 0xffff0ff0 (SDM §18.2.3: "
    "the processor sets cause bits only for detected conditions)."
)


def run_inject(vector: int) -> Callable[[GuestRun], None]:
    def run(g: GuestRun) -> None:
        g.expect("guest reaches the injection point", SYNC)
        g.set_debug(GuestDebug(inject_db=vector == DB_VECTOR, inject_bp=vector == BP_VECTOR))
        g.expect_sequence([
            (f"the guest's handler for vector {vector} runs with its own DR6 and the right return address",
             Expect("exit", code=EXIT_HANDLER, kind="inject",
                    guest={"vector": vector, "dr6": DR6_CLEAN, "return_address": g.sym("inj_point")}),
             lambda: {"vector": g.read_uint(0x1010, 1), "dr6": g.read_dr6(0x1018),
                      "return_address": g.read_slot(0x1020)}),
        ])

    return run

FAMILY = (
    Scenario("inject_db", "KVM_GUESTDBG_INJECT_DB reaches the guest's #DB handler", static("inject"),
             run_inject(DB_VECTOR), INJECT_CITE.format(v=1), handlers={1: "db_handler"}),
    Scenario("inject_bp", "KVM_GUESTDBG_INJECT_BP reaches the guest's #BP handler", static("inject"),
             run_inject(BP_VECTOR), INJECT_CITE.format(v=3), handlers={3: "bp_handler"}),
)
