"""The building blocks of every scenario family: debug configurations, the shape of the
expected exits, the guest source, and the :class:`Scenario` record.

Every expectation is derived from the documents cited next to it, never from what a
particular host does:

* ``SDM``: Intel 64 and IA-32 Architectures Software Developer's Manual, Vol.3B ch.18
  "Debug, Branch Profile, TSC, and Intel Resource Director Technology (Intel RDT)
  Features" (plus the Vol.2 instruction pages and Vol.3A ch.6 where named);
* ``APM``: AMD64 Architecture Programmer's Manual Vol.2, §13.1 "Software-Debug
  Resources" and §8.2 "Vectors";
* ``KVM``: Documentation/virt/kvm/api.rst, "KVM_SET_GUEST_DEBUG" (control flags,
  debugreg[]) and "KVM_EXIT_DEBUG" (``struct kvm_debug_exit_arch``: exception, pc = the
  guest's linear rip, dr6, dr7).

The expectations were cross-checked against the public suites that test the same
things (Linux tools/testing/selftests/kvm/x86/debug_regs.c, kvm-unit-tests x86/debug.c
and x86/emulator.c); no code is taken from them.

Architecture facts used throughout (cited once here):

* DR6 with no condition reads 0xffff0ff0: bits 4-11 and 16-31 are 1, bit 12 is 0; B0-B3
  are bits 0-3, BD bit 13, BS bit 14, BT bit 15; RTM (bit 16) is active low. (SDM
  §18.2.3 "Debug Status Register (DR6)"; APM §13.1.1.3; KVM's DR6_ACTIVE_LOW.)
* DR7 bit 10 reads as 1; Ln/Gn enable slot n, R/Wn at 16+4n (00 execute, 01 write, 10
  I/O with CR4.DE=1, 11 read/write), LENn at 18+4n (00 1 byte, 01 2, 11 4, 10 8 bytes).
  (SDM §18.2.4 "Debug Control Register (DR7)"; APM §13.1.1.4.)
* #DB is vector 1, #BP vector 3 (SDM Vol.3A Table 6-1; APM §8.2.2, §8.2.4).
* Instruction breakpoints and general detect are faults: reported before the
  instruction runs, pc at it. Data and I/O breakpoints, single-step and INT1 are traps:
  reported after the instruction, pc at the next one. (SDM §18.3.1 Table 18-2 "Debug
  Exception Conditions"; APM §13.1.1.3 and §8.2.2.)
* KVM reports a #DB that hits a host-owned condition as KVM_EXIT_DEBUG with exception 1
  and dr6 = the conditions of *that* event. (KVM: KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.resources import files

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import EXIT_DONE, GuestRun
from kvmtrace.conformance.facts import (
    DB_VECTOR,
    DR6_B,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
    MODE_BITS,
    MODES,
    Dr7,
)
from kvmtrace.conformance.model import Expect

#: Where the data-breakpoint scenarios point their breakpoints (DATA page, 8-aligned).
DATA_TARGET = 0x1100
#: The I/O port the I/O-breakpoint and PIO scenarios use (POST code port; no device here).
PIO_PORT = 0x80

REG = {1: "al", 2: "ax", 4: "eax", 8: "rax"}
PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}


def hw_bp(slot: int, addr: int, kind: str, length: int = 1, *, extra_dr7: int = 0) -> GuestDebug:
    """One hardware breakpoint in DR``slot`` (the others zero and disabled), as raw debug registers."""
    dr = [0, 0, 0, 0]
    dr[slot] = addr
    return GuestDebug(raw_debugreg=(*dr, DR7_FIXED_1 | Dr7.slot_bits(slot, kind, length) | extra_dr7))


def use_hw_without_breakpoints() -> GuestDebug:
    """KVM_GUESTDBG_USE_HW_BP with every slot disabled (DR7 = 0x400): the host intercepts #DB."""
    return GuestDebug(raw_debugreg=(0, 0, 0, 0, DR7_FIXED_1))


def step_trap(pc: int, *, dr7: int | None = DR7_FIXED_1, kind: str = "step") -> Expect:
    """A single-step trap reported after the instruction (SDM §18.3.1.4; APM §13.1.1.3 BS).

    ``dr7``: the DR7 in force, informational (default 0x400: no breakpoint programmed;
    bit 10 always reads 1).
    """
    return Expect("debug", exception=DB_VECTOR, pc=pc, dr6=DR6_CLEAN | DR6_BS, dr7=dr7, kind=kind)


def bp_hit(pc: int, slot: int, debug: GuestDebug, *, kind: str = "exec_bp") -> Expect:
    """A hardware breakpoint of DR``slot``: only Bslot set; dr7 (informational) echoes the programmed DR7."""
    return Expect("debug", exception=DB_VECTOR, pc=pc, dr6=DR6_CLEAN | DR6_B[slot], dr7=debug.dr7, kind=kind)


#: The guest reached its next HLT sync point.
SYNC = Expect("hlt", kind="progress")
#: The guest wrote its sync port (driver.SYNC_PORT): the sync point of irqchip and ring-3 guests.
PSYNC = Expect("sync", kind="progress")


def guest_exit(code: int = EXIT_DONE, **guest: int) -> Expect:
    """The guest wrote ``code`` to the exit port, having observed ``guest`` (read back from its memory)."""
    return Expect("exit", code=code, guest=guest, kind="progress")


#: Where the guest's own handlers leave their counters and the #DB log (see guests/common.S).
COUNT_DB, COUNT_BP, COUNT_UD, COUNT_IRQ, SCENARIO_COUNTER = 0x1200, 0x1201, 0x1202, 0x1204, 0x1208
BP_RETURN, UD_RETURN, CPL_RECORD, USER_FLAGS_RECORD = 0x1218, 0x1220, 0x1210, 0x1214
DB_LOG, DB_LOG_ENTRIES = 0x1300, 16


def db_log(g: GuestRun, entries: int | None = None) -> dict[str, int]:
    """The guest's #DB log as guest values: ``count_db`` and, per entry, ``db<i>_return`` and
    ``db<i>_dr6`` (all logged entries, or the first ``entries``)."""
    count = g.read_uint(COUNT_DB, 1)
    out = {"count_db": count}
    for i in range(min(count if entries is None else entries, count, DB_LOG_ENTRIES)):
        out[f"db{i}_return"] = g.read_slot(DB_LOG + 16 * i)
        out[f"db{i}_dr6"] = g.read_dr6(DB_LOG + 16 * i + 8)
    return out


def expect_db_log(g: GuestRun, label: str, entries: list[tuple[str, int, int, str]], *, reason: str = "hlt",
                  count_kind: str = "guest_db") -> None:
    """Run to the guest's next sync point and check its #DB log there: how many #DB it took, then
    each entry (what, return address, DR6, kind) as a check of its own, so that each deviation
    is its own finding."""
    obs = g.run()
    log = db_log(g)
    if obs.reason != reason:  # the guest never got there: one difference, of the first event expected
        kind = entries[0][3] if entries else count_kind
        g.check(f"{label}: {len(entries)} #DB", Expect(reason, guest={"count_db": len(entries)}, kind=kind),
                replace(obs, guest={"count_db": log["count_db"]}))
        return
    g.check(f"{label}: {len(entries)} #DB", Expect(reason, guest={"count_db": len(entries)}, kind=count_kind),
            replace(obs, guest={"count_db": log["count_db"]}))
    for i, (what, ret, dr6, kind) in enumerate(entries):
        seen = {"return": log.get(f"db{i}_return"), "dr6": log.get(f"db{i}_dr6")}
        g.check(f"{label}: #DB {i + 1}, {what}", Expect(reason, guest={"return": ret, "dr6": dr6}, kind=kind),
                replace(obs, guest={k: v for k, v in seen.items() if v is not None}))


def db_log_expect(*entries: tuple[int, int]) -> dict[str, int]:
    """The guest values :func:`db_log` must read: one (return address, DR6) per #DB, in order."""
    out = {"count_db": len(entries)}
    for i, (ret, dr6) in enumerate(entries):
        out[f"db{i}_return"], out[f"db{i}_dr6"] = ret, dr6
    return out


def guest_source(name: str) -> str:
    return files("kvmtrace.conformance").joinpath("guests", f"{name}.S").read_text()


def exception_stubs() -> str:
    """exc_0 .. exc_31: record the vector and the top two stack slots, exit with 0x80|vector."""
    out = ["# Catch-all exception stubs (generated by kvmtrace.conformance.scenarios)."]
    for v in range(32):
        out += [f"exc_{v}:", f"        mov     byte ptr [0x1f00], {v}", "        STORE_STACK 0x1f08",
                f"        EXIT    {0x80 | v:#x}"]
    return "\n".join(out) + "\n"


def full_source(body: str, mode: str) -> str:
    """The complete guest: syntax and mode prelude, shared macros, the scenario's code, the stubs."""
    return (f".intel_syntax noprefix\n.set .LBITS, {MODE_BITS[mode]}\n" + guest_source("common") + "\n"
            + body + "\n" + exception_stubs())


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    #: The guest's source for a mode (without the common prelude).
    source: Callable[[str], str]
    run: Callable[[GuestRun], None]
    #: Where the expectations come from (also written into the JSON report).
    cite: str
    modes: tuple[str, ...] = MODES
    #: IDT/IVT vectors pointed at scenario symbols (the others go to the catch-all stubs).
    handlers: dict[int, str] = field(default_factory=dict)
    memory_size: Callable[[str], int] = lambda mode: 16 << 20
    #: Machine(irqchip=True): KVM's in-kernel LAPIC/IOAPIC/PIC and PIT (HLT then waits in the
    #: kernel, so such guests sync through the sync port instead).
    irqchip: bool = False


def static(name: str) -> Callable[[str], str]:
    return lambda mode: guest_source(name)
