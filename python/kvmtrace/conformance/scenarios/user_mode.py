"""Ring 3 and locked accesses: single-stepping CPL-3 code, split-lock atomics."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import RFLAGS_IF, RFLAGS_IOPL
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    CPL_RECORD,
    PSYNC,
    SYNC,
    USER_FLAGS_RECORD,
    Scenario,
    guest_exit,
    static,
    step_trap,
)

CPL3_CITE = (
    "SDM §18.3.1.4 (the single-step trap follows every instruction at any CPL), Vol.1 §18.5 (IOPL 3 allows "
    "IN/OUT/CLI/STI at CPL 3), Vol.2A CPUID; APM §13.1.1.3; kvm-unit-tests x86/debug.c (every single-step "
    "test is run again in usermode with IOPL 3); KVM api.rst KVM_GUESTDBG_SINGLESTEP, KVM_EXIT_IO."
)


#: The flags ring 3 must run with: IOPL 3 and IF 0, as its IRET frame gave them (0x3002).
USER_FLAGS, IOPL_IF = RFLAGS_IOPL, RFLAGS_IOPL | RFLAGS_IF


def user_entry(g: GuestRun) -> dict[str, int]:
    """What ring 3 recorded on entry: its CPL and the IOPL/IF bits of its flags."""
    return {"cpl": g.read_uint(CPL_RECORD, 1), "flags": g.read_uint(USER_FLAGS_RECORD, 4) & IOPL_IF}


def run_single_step_cpl3(g: GuestRun) -> None:
    g.expect_sequence([("the guest reaches ring 3 with IOPL 3 and IF 0, as its IRET frame gave",
                        Expect("sync", guest={"cpl": 3, "flags": USER_FLAGS}, kind="cpl3_entry"),
                        lambda: user_entry(g))])
    g.set_debug(GuestDebug(single_step=True))
    steps = [("nop", "u1"), ("xor", "u2"), ("CPUID (emulated)", "u3"), ("mov dx", "u4"),
             ("IN that exits to userspace", "u5"), ("CLI", "u6"), ("STI", "u7"), ("nop", "u8")]
    g.expect_sequence([(f"ring 3: step over {what}", step_trap(g.sym(to), kind="step_cpl3")) for what, to in steps])
    g.set_debug(None)
    g.expect("the final sync point", PSYNC)
    g.expect("guest completes", guest_exit())


BUS_LOCK_CITE = (
    "SDM Vol.3A §9.1.2.2 (a locked access may split cache lines), §18.2.3 (DR6 bit 11, BLD, is active low: it "
    "reads 1 unless a bus lock was detected with IA32_DEBUGCTL.BUS_LOCK_DETECT, off here), §6.15 #AC (needs "
    "CR0.AM and EFLAGS.AC, off here); APM §13.1.1.3; kvm-unit-tests x86/debug.c bus_lock_test (no #AC, no "
    "#DB at CPL 0 and CPL 3, the value written)."
)


def split_lock_value(g: GuestRun) -> int:
    return g.read_uint(0x103C, 8) if g.mode == "long" else g.read_uint(0x103E, 4)


def run_bus_lock(g: GuestRun) -> None:
    g.expect_sequence([("CPL 0: no #AC or #DB, the value is written",
                        Expect("hlt", guest={"value": 0x12345678}, kind="bus_lock"),
                        lambda: {"value": split_lock_value(g)})])
    g.expect("set up the stepped access", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([("host step to the locked access", step_trap(g.sym("b_lock"))),
                       ("host step over it: DR6 is BS only (bit 11 still reads 1)",
                        step_trap(g.sym("b_end"), kind="bus_lock"))])
    g.set_debug(None)
    g.expect_sequence([("the stepped access wrote its value", Expect("hlt", guest={"value": 0x2468ACE0},
                                                                      kind="bus_lock"),
                        lambda: {"value": split_lock_value(g)})])
    if g.mode != "real":
        g.expect_sequence([("CPL 3: no #AC or #DB, the value is written",
                            Expect("sync", guest={"cpl": 3, "value": 0x13579BDF}, kind="bus_lock"),
                            lambda: {"cpl": user_entry(g)["cpl"], "value": split_lock_value(g)})])
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("single_step_cpl3", "single-step ring-3 code with IOPL 3 (CPUID, IN, CLI/STI)",
             static("single_step_cpl3"), run_single_step_cpl3, CPL3_CITE, modes=("protected", "long")),
    Scenario("bus_lock", "a split-lock atomic at CPL 0 and 3: no #AC/#DB; stepped, DR6 keeps bit 11",
             static("bus_lock"), run_bus_lock, BUS_LOCK_CITE),
)
