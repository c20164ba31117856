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
from kvmtrace.exceptions import InvalidConfigError

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

INJECT_PENDING_CITE = (
    "KVM api.rst KVM_SET_GUEST_DEBUG (INJECT_DB/INJECT_BP inject one exception); KVM x86.c "
    "kvm_arch_vcpu_ioctl_set_guest_debug (-EBUSY while an exception is pending); SDM Vol.3A §6.15 Table 6-5 "
    "(#DB and #BP are benign: two of them never make a #DF), §6.12. Either the second request is refused "
    "and the first exception is delivered, or the guest takes one of them at the boundary where it stands."
)


def run_inject_db_pending(g: GuestRun) -> None:
    g.expect("guest reaches the injection point", SYNC)
    g.set_debug(GuestDebug(inject_bp=True))
    try:
        g.set_debug(GuestDebug(inject_db=True))
        refused = False
        g.note("KVM accepted INJECT_DB while the injected #BP was pending")
    except InvalidConfigError as e:  # -EBUSY, mapped by kvmtrace
        refused = True
        g.note(f"KVM refused INJECT_DB while the #BP was pending: {e}")

    def delivered() -> dict[str, int]:
        vector = g.read_uint(0x1010, 1)
        got = {"return_address": g.read_slot(0x1020)}
        if refused:
            got["vector"] = vector
        else:
            got["delivered"] = int(vector in (DB_VECTOR, BP_VECTOR))
        return got

    want = {"vector": BP_VECTOR} if refused else {"delivered": 1}
    g.expect_sequence([
        ("the guest takes " + ("the pending #BP" if refused else "#DB or #BP") + " at the injection point, "
         "never #DF", Expect("exit", code=EXIT_HANDLER, kind="inject_pending",
                             guest={**want, "return_address": g.sym("inj_point")}), delivered),
    ])
    g.set_debug(None)


FAMILY = (
    Scenario("inject_db", "KVM_GUESTDBG_INJECT_DB reaches the guest's #DB handler", static("inject"),
             run_inject(DB_VECTOR), INJECT_CITE.format(v=1), handlers={DB_VECTOR: "db_handler"}),
    Scenario("inject_bp", "KVM_GUESTDBG_INJECT_BP reaches the guest's #BP handler", static("inject"),
             run_inject(BP_VECTOR), INJECT_CITE.format(v=3), handlers={BP_VECTOR: "bp_handler"}),
    Scenario("inject_db_pending", "INJECT_DB while an injected #BP is pending: -EBUSY or one delivery, never #DF",
             static("inject_db_pending"), run_inject_db_pending, INJECT_PENDING_CITE,
             handlers={DB_VECTOR: "db_handler", BP_VECTOR: "bp_handler"}),
)
