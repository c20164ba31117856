"""Hardware breakpoints owned by the host: execute, write, read/write and I/O."""

from __future__ import annotations

from collections.abc import Callable

from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.scenarios.common import (
    DATA_TARGET,
    PIO_PORT,
    PTR,
    REG,
    SYNC,
    Scenario,
    bp_hit,
    guest_exit,
    hw_bp,
    static,
)

HW_EXEC_CITE = (
    "SDM §18.3.1.1 Instruction-Breakpoint Exception Condition (fault: reported before the instruction, "
    "pc at it, DR6.Bn), §18.2.4 (LEN=00 for execute); APM §13.1.1.3-4; KVM api.rst KVM_SET_GUEST_DEBUG "
    "(KVM_GUESTDBG_USE_HW_BP, debugreg[0-3,7]), KVM_EXIT_DEBUG."
)


def run_hw_exec_bp(g: GuestRun) -> None:
    target = g.sym("bp_target")
    for slot in range(4):
        debug = hw_bp(slot, target, "exec")
        g.set_debug(debug)
        if g.stopped is None:
            g.set_pc(g.sym("_start"))
        g.expect_sequence([(f"DR{slot} execute at bp_target", bp_hit(target, slot, debug))])
    # With the breakpoints gone the instruction runs and the guest goes on.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(target)
    g.expect("guest runs on after the breakpoints are removed", SYNC)



HW_DATA_CITE = (
    "SDM §18.3.1.2 Data Memory and I/O Breakpoint Exception Conditions (trap: reported after the access, "
    "pc at the next instruction, DR6.Bn), §18.2.5 Breakpoint Field Recognition (any access overlapping "
    "the LEN-byte range matches; R/W=01 does not match reads), §18.2.4 (LEN encodings; 8 bytes is 10b); "
    "APM §13.1.1.4 (LEN 10b = 8 bytes, long mode only); KVM api.rst KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG."
)


def data_lengths(mode: str) -> tuple[int, ...]:
    # 8-byte breakpoints (LEN=10b) are defined only in long mode on AMD (APM §13.1.1.4),
    # and 8-byte accesses exist only there; the other modes test 1, 2 and 4.
    return (1, 2, 4, 8) if mode == "long" else (1, 2, 4)


def data_bp_source(kind: str) -> Callable[[str], str]:
    """One probe group per (slot, length); the host reprograms at each SYNC."""

    def build(mode: str) -> str:
        a = DATA_TARGET
        lines = [f"# hw_{kind}_bp: probes for a {kind} breakpoint at {a:#x} (generated per mode).",
                 "_start:", "        nop", "        SYNC"]
        for slot in range(4):
            for n in data_lengths(mode):
                t = f"s{slot}_l{n}"
                lines += [
                    f"{t}:",
                    f"        mov     byte ptr [{a - 1:#x}], al      # just below the range: no match",
                    f"        mov     byte ptr [{a + n:#x}], al      # just above the range: no match",
                ]
                if kind == "write":
                    lines += [
                        f"        mov     {REG[n]}, {PTR[n]} ptr [{a:#x}]   # a read: no match for R/W=01",
                        f"        mov     byte ptr [{a + n - 1:#x}], al      # a write to the last byte: match",
                        f"{t}_hit1:",
                        f"        mov     {PTR[n]} ptr [{a:#x}], {REG[n]}   # a write of the whole range: match",
                        f"{t}_hit2:",
                    ]
                else:
                    lines += [
                        f"        mov     {REG[n]}, {PTR[n]} ptr [{a:#x}]   # a read of the whole range: match",
                        f"{t}_hit1:",
                        f"        mov     byte ptr [{a + n - 1:#x}], al      # a write to the last byte: match",
                        f"{t}_hit2:",
                    ]
                lines.append("        SYNC")
        lines += ["        EXIT    0"]
        return "\n".join(lines) + "\n"

    return build


def run_data_bp(kind: str) -> Callable[[GuestRun], None]:
    def run(g: GuestRun) -> None:
        g.expect("start", SYNC)
        for slot in range(4):
            for n in data_lengths(g.mode):
                t = f"s{slot}_l{n}"
                debug = hw_bp(slot, DATA_TARGET, kind, n)
                g.set_debug(debug)
                # The non-matching accesses come first; after the two matches nothing
                # else may match before the group's HLT.
                hit1, hit2 = (bp_hit(g.sym(f"{t}_hit{i}"), slot, debug, kind="data_bp") for i in (1, 2))
                g.expect_sequence([
                    (f"DR{slot} len {n}: first matching access", hit1),
                    (f"DR{slot} len {n}: second matching access", hit2),
                    (f"DR{slot} len {n}: end of group", SYNC),
                ])
        g.set_debug(None)
        g.expect("guest completes", guest_exit())

    return run



HW_IO_CITE = (
    "SDM §18.2.4 (R/W=10: break on I/O reads or writes, only with CR4.DE=1), §18.3.1.2 (I/O breakpoints are "
    "traps: pc after the IN/OUT, DR6.Bn), §18.2.5 (port range by LEN); APM §13.1.1.4 (R/W=10 with "
    "CR4.DE=1); KVM api.rst KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_USE_HW_BP), KVM_EXIT_DEBUG. The guest "
    "enables CR4.DE itself. I/O instructions also exit to userspace (KVM_EXIT_IO): those exits come "
    "first and are passed over; the breakpoint must still be reported."
)


def io_bp_source(mode: str) -> str:
    p = PIO_PORT
    cr = "rax" if mode == "long" else "eax"
    lines = ["# hw_io_bp: I/O breakpoint probes (generated).", "_start:",
             f"        mov     {cr}, cr4", f"        or      {cr}, 8                # CR4.DE",
             f"        mov     cr4, {cr}", "        SYNC"]
    for slot in range(4):
        lines += [f"s{slot}:",
                  f"        out     {p + 1:#x}, al          # another port: no match",
                  f"        out     {p:#x}, al              # match",
                  f"s{slot}_hit1:",
                  f"        in      al, {p:#x}              # match (R/W=10 is reads and writes)",
                  f"s{slot}_hit2:",
                  "        SYNC"]
    # A 4-port range at 0x84 in DR0: the last port of the range matches, the one after does not.
    lines += ["l4:",
              f"        out     {p + 8:#x}, al          # just above the range: no match",
              f"        out     {p + 7:#x}, al          # last port of the range: match",
              "l4_hit1:",
              f"        mov     dx, {p + 4:#x}",
              "        in      eax, dx                 # the whole range: match",
              "l4_hit2:",
              "        SYNC",
              "        EXIT    0"]
    return "\n".join(lines) + "\n"


def run_hw_io_bp(g: GuestRun) -> None:
    g.expect("CR4.DE set", SYNC)
    for slot in range(4):
        debug = hw_bp(slot, PIO_PORT, "io", 1)
        g.set_debug(debug)
        g.expect_sequence([
            (f"DR{slot} port {PIO_PORT:#x}: OUT", bp_hit(g.sym(f"s{slot}_hit1"), slot, debug, kind="io_bp")),
            (f"DR{slot} port {PIO_PORT:#x}: IN", bp_hit(g.sym(f"s{slot}_hit2"), slot, debug, kind="io_bp")),
            (f"DR{slot}: end of group", SYNC),
        ])
    debug = hw_bp(0, PIO_PORT + 4, "io", 4)
    g.set_debug(debug)
    g.expect_sequence([
        ("DR0 ports 0x84-0x87: OUT to 0x87", bp_hit(g.sym("l4_hit1"), 0, debug, kind="io_bp")),
        # The MOV DX between the two accesses does no I/O: the next report is after the IN.
        ("DR0 ports 0x84-0x87: IN EAX from 0x84", bp_hit(g.sym("l4_hit2"), 0, debug, kind="io_bp")),
        ("DR0 ports 0x84-0x87: end of group", SYNC),
    ])
    g.set_debug(None)
    g.expect("guest completes", guest_exit())

FAMILY = (
    Scenario("hw_exec_bp", "instruction breakpoint in DR0, DR1, DR2, DR3", static("hw_exec_bp"),
             run_hw_exec_bp, HW_EXEC_CITE),
    Scenario("hw_write_bp", "write breakpoint in each DR, lengths 1/2/4 (8 in long mode)",
             data_bp_source("write"), run_data_bp("write"), HW_DATA_CITE),
    Scenario("hw_rw_bp", "read/write breakpoint in each DR, lengths 1/2/4 (8 in long mode)",
             data_bp_source("rw"), run_data_bp("rw"), HW_DATA_CITE),
    Scenario("hw_io_bp", "I/O breakpoint (CR4.DE) in each DR on OUT and IN, and a 4-port range",
             io_bp_source, run_hw_io_bp, HW_IO_CITE),
)
