"""The conformance scenarios: guest program + KVM_SET_GUEST_DEBUG configuration +
the architectural expectation of every exit, with where that expectation comes from.

Every expectation is derived from the documents cited next to it, never from
what a particular host does:

* ``SDM``: Intel 64 and IA-32 Architectures Software Developer's Manual, Vol.3B
  ch.18 "Debug, Branch Profile, TSC, and Intel Resource Director Technology
  (Intel RDT) Features" (plus the Vol.2 instruction pages and Vol.3A ch.6 where
  named);
* ``APM``: AMD64 Architecture Programmer's Manual Vol.2, §13.1 "Software-Debug
  Resources" and §8.2 "Vectors";
* ``KVM``: Documentation/virt/kvm/api.rst, "KVM_SET_GUEST_DEBUG" (control flags,
  debugreg[]) and "KVM_EXIT_DEBUG" (``struct kvm_debug_exit_arch``: exception,
  pc = the guest's linear rip, dr6, dr7).

The expectations were cross-checked against the two public suites that test the
same things (Linux tools/testing/selftests/kvm/x86/debug_regs.c and
kvm-unit-tests x86/debug.c); no code is taken from them.

Architecture facts used throughout (cited once here):

* DR6 with no condition reads 0xffff0ff0: bits 4-11 and 16-31 are 1, bit 12 is
  0; B0-B3 are bits 0-3, BD bit 13, BS bit 14, BT bit 15; RTM (bit 16) is active
  low. (SDM §18.2.3 "Debug Status Register (DR6)"; APM §13.1.1.3 "Debug-Status
  Register (DR6)"; KVM's DR6_ACTIVE_LOW.)
* DR7 bit 10 reads as 1; Ln/Gn enable slot n, R/Wn at 16+4n (00 execute, 01
  write, 10 I/O with CR4.DE=1, 11 read/write), LENn at 18+4n (00 1 byte, 01 2,
  11 4, 10 8 bytes - 8 only in long mode on AMD, on Intel Core and later).
  (SDM §18.2.4 "Debug Control Register (DR7)"; APM §13.1.1.4 "Debug-Control
  Register (DR7)".)
* #DB is vector 1, #BP vector 3 (SDM Vol.3A Table 6-1; APM §8.2.2, §8.2.4).
* Instruction breakpoints and general detect are faults: reported before the
  instruction runs, pc at it. Data and I/O breakpoints, single-step and INT1 are
  traps: reported after the instruction, pc at the next one. (SDM §18.3.1
  Table 18-2 "Debug Exception Conditions"; APM §13.1.1.3 and §8.2.2.)
* KVM reports a #DB that hits a host-owned condition as KVM_EXIT_DEBUG with
  exception 1 and dr6 = the conditions of *that* event; with
  KVM_GUESTDBG_USE_HW_BP the DR7 the guest runs with is debugreg[7] as given to
  KVM_SET_GUEST_DEBUG, so the reported dr7 echoes it. (KVM: KVM_SET_GUEST_DEBUG,
  KVM_EXIT_DEBUG.)

DR7 echo policy: ``dr7`` is compared in the scenarios whose subject is the
report of one kind of debug exit: the breakpoint scenarios (``hw_*_bp``,
``gd_bit``, ``icebp``), where KVM_GUESTDBG_USE_HW_BP makes debugreg[7] the DR7
in force, and ``single_step``, where the DR7 in force is the reset value 0x400
(bit 10 can never read 0). Scenarios about something else (guest DR6, DR6
accumulation, MOV SS, stepping across exits) do not compare it, so that one
deviation does not mask what they test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.resources import files

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import EXIT_DONE, EXIT_HANDLER, GuestRun
from kvmtrace.conformance.model import (
    BP_VECTOR,
    DB_VECTOR,
    DR6_B,
    DR6_BD,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
    Expect,
)

MODES = ("real", "protected", "long")
BITS = {"real": 16, "protected": 32, "long": 64}

#: Where the data-breakpoint scenarios point their breakpoints (DATA page, 8-aligned).
DATA_TARGET = 0x1100
#: The I/O port the I/O-breakpoint and PIO scenarios use (POST code port; no device here).
PIO_PORT = 0x80

RW_BITS = {"exec": 0b00, "write": 0b01, "io": 0b10, "rw": 0b11}
LEN_BITS = {1: 0b00, 2: 0b01, 8: 0b10, 4: 0b11}
REG = {1: "al", 2: "ax", 4: "eax", 8: "rax"}
PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}


# ----------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------

def hw_bp(slot: int, addr: int, kind: str, length: int = 1, *, extra_dr7: int = 0) -> GuestDebug:
    """One hardware breakpoint in DR``slot`` (the others zero and disabled), as raw debug registers."""
    dr = [0, 0, 0, 0]
    dr[slot] = addr
    dr7 = DR7_FIXED_1 | 1 << (2 * slot) | RW_BITS[kind] << (16 + 4 * slot) | LEN_BITS[length] << (18 + 4 * slot)
    return GuestDebug(raw_debugreg=(*dr, dr7 | extra_dr7))


def use_hw_without_breakpoints() -> GuestDebug:
    """KVM_GUESTDBG_USE_HW_BP with every slot disabled (DR7 = 0x400): the host intercepts #DB."""
    return GuestDebug(raw_debugreg=(0, 0, 0, 0, DR7_FIXED_1))


def step_trap(pc: int, *, dr7: int | None = None) -> Expect:
    """A single-step trap reported after the instruction (SDM §18.3.1.4; APM §13.1.1.3 BS)."""
    return Expect("debug", exception=DB_VECTOR, pc=pc, dr6=DR6_CLEAN | DR6_BS, dr7=dr7)


def bp_hit(pc: int, slot: int, debug: GuestDebug, *, check_dr7: bool = True) -> Expect:
    """A hardware breakpoint of DR``slot``: only Bslot set; dr7 echoes the programmed DR7
    (compared only where the scenario is about breakpoint reports, see the module docstring)."""
    return Expect("debug", exception=DB_VECTOR, pc=pc, dr6=DR6_CLEAN | DR6_B[slot],
                  dr7=debug.dr7 if check_dr7 else None)


SYNC = Expect("hlt")  # the guest reached its next HLT sync point


def guest_source(name: str) -> str:
    return files(__package__).joinpath("guests", f"{name}.S").read_text()


def exception_stubs() -> str:
    """exc_0 .. exc_31: record the vector and the top two stack slots, exit with 0x80|vector."""
    out = ["# Catch-all exception stubs (generated by kvmtrace.conformance.scenarios)."]
    for v in range(32):
        out += [f"exc_{v}:", f"        mov     byte ptr [0x1f00], {v}", "        STORE_STACK 0x1f08",
                f"        EXIT    {0x80 | v:#x}"]
    return "\n".join(out) + "\n"


def full_source(body: str, mode: str) -> str:
    """The complete guest: syntax and mode prelude, shared macros, the scenario's code, the stubs."""
    return (f".intel_syntax noprefix\n.set .LBITS, {BITS[mode]}\n" + guest_source("common") + "\n"
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


def static(name: str) -> Callable[[str], str]:
    return lambda mode: guest_source(name)


# ----------------------------------------------------------------------------
# single_step
# ----------------------------------------------------------------------------

SINGLE_STEP_CITE = (
    "SDM §18.3.1.4 Single-Step Exception Condition (trap after each instruction, DR6.BS), Vol.2 STI/CLI "
    "(STI's interrupt shadow does not block #DB); APM §13.1.1.3 (BS), §8.2.2; KVM api.rst KVM_SET_GUEST_DEBUG "
    "(KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_BLOCKIRQ) and KVM_EXIT_DEBUG. CPUID and RDMSR are emulated by KVM "
    "and must still produce their step exit."
)


def run_single_step(g: GuestRun, *, block_irq: bool) -> None:
    # Expectation: one KVM_EXIT_DEBUG per instruction, exception 1, pc at the next
    # instruction, dr6 = 0xffff0ff0|BS, dr7 = the DR7 in force (0x400: reset value,
    # no hardware breakpoints programmed).
    debug = GuestDebug(single_step=True, block_irq=block_irq)
    g.set_debug(debug)
    g.expect_sequence([(f"step to {label}", step_trap(g.sym(label), dr7=debug.dr7))
                       for label in ("ss_1", "ss_2", "ss_3", "ss_4", "ss_5", "ss_6", "ss_end")])


# ----------------------------------------------------------------------------
# hw_exec_bp
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# hw_write_bp / hw_rw_bp
# ----------------------------------------------------------------------------

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
                g.expect_sequence([
                    (f"DR{slot} len {n}: first matching access", bp_hit(g.sym(f"{t}_hit1"), slot, debug)),
                    (f"DR{slot} len {n}: second matching access", bp_hit(g.sym(f"{t}_hit2"), slot, debug)),
                    (f"DR{slot} len {n}: end of group", SYNC),
                ])
        g.set_debug(None)
        g.expect("guest completes", Expect("exit", code=EXIT_DONE))

    return run


# ----------------------------------------------------------------------------
# hw_io_bp
# ----------------------------------------------------------------------------

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
            (f"DR{slot} port {PIO_PORT:#x}: OUT", bp_hit(g.sym(f"s{slot}_hit1"), slot, debug)),
            (f"DR{slot} port {PIO_PORT:#x}: IN", bp_hit(g.sym(f"s{slot}_hit2"), slot, debug)),
            (f"DR{slot}: end of group", SYNC),
        ])
    debug = hw_bp(0, PIO_PORT + 4, "io", 4)
    g.set_debug(debug)
    g.expect_sequence([
        ("DR0 ports 0x84-0x87: OUT to 0x87", bp_hit(g.sym("l4_hit1"), 0, debug)),
        # The MOV DX between the two accesses does no I/O: the next report is after the IN.
        ("DR0 ports 0x84-0x87: IN EAX from 0x84", bp_hit(g.sym("l4_hit2"), 0, debug)),
        ("DR0 ports 0x84-0x87: end of group", SYNC),
    ])
    g.set_debug(None)
    g.expect("guest completes", Expect("exit", code=EXIT_DONE))


# ----------------------------------------------------------------------------
# sw_bp_int3
# ----------------------------------------------------------------------------

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
    g.expect("INT3 exits to the host", Expect("debug", exception=BP_VECTOR, pc=at))
    # The debugger resumes past its breakpoint: nothing may have been delivered to the guest.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("sw_bp_end"))
    g.expect("guest resumes after the INT3 without seeing #BP", Expect("exit", code=EXIT_DONE))


# ----------------------------------------------------------------------------
# gd_bit
# ----------------------------------------------------------------------------

GD_CITE = (
    "SDM §18.3.1.3 General-Detect Exception Condition (DR7.GD: a MOV to or from any DRn faults with "
    "DR6.BD; pc at the MOV), §18.2.4 (GD is bit 13 of DR7); APM §13.1.1.3 (BD), §13.1.1.4 (GD); KVM "
    "api.rst KVM_SET_GUEST_DEBUG (debugreg[7] with GD), KVM_EXIT_DEBUG (dr6 = 0xffff0ff0|BD, dr7 = the "
    "programmed DR7 0x2400)."
)


def run_gd_bit(g: GuestRun) -> None:
    debug = GuestDebug(general_detect=True)
    g.set_debug(debug)
    gd = Expect("debug", exception=DB_VECTOR, dr6=DR6_CLEAN | DR6_BD, dr7=debug.dr7)
    for probe, what in (("gd_read", "MOV from DR0"), ("gd_write", "MOV to DR1")):
        if g.stopped is None:
            g.set_pc(g.sym(probe))
        g.expect_sequence([(f"{what} faults", replace(gd, pc=g.sym(probe)))])
    # Skipping the faulting MOV (as a debugger would), the guest goes on.
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("gd_done"))
    g.expect("guest completes", Expect("exit", code=EXIT_DONE))


# ----------------------------------------------------------------------------
# guest_dr6_preserved
# ----------------------------------------------------------------------------

GUEST_DR6 = 0xFFFF0FFA  # the guest's own value: B1|B3 over the fixed bits

GUEST_DR6_CITE = (
    "SDM §18.2.3 (DR6 is software-writable; the processor sets cause bits only when it delivers a #DB to "
    "this software), APM §13.1.1.3; KVM api.rst KVM_SET_GUEST_DEBUG: host debug events exit to the host "
    "instead of reaching the guest, so the guest's DR6 must read back as it wrote it (0xffff0ffa), and "
    "each exit's dr6 holds only that exit's cause (BS, B0, B2) - not the guest's B1|B3."
)


def run_guest_dr6_preserved(g: GuestRun) -> None:
    # (a) the host single-steps the guest from its MOV to DR6 up to its sync point.
    g.set_debug(GuestDebug(single_step=True))
    stop = g.sym("a_sync")
    for n in range(1, 33):
        obs = g.run()
        g.check(f"part a: step {n} reports only BS", Expect("debug", exception=DB_VECTOR, dr6=DR6_CLEAN | DR6_BS), obs)
        if obs.reason != "debug" or obs.pc == stop:
            break
    g.set_debug(None)
    g.expect_sequence([("part a: the guest reads back its own DR6 after host single-steps",
                        Expect("hlt", guest={"dr6": GUEST_DR6}), lambda: {"dr6": g.read_dr6(0x1000)})])
    # (b) a host data breakpoint fires between the guest's write and its read.
    debug = hw_bp(0, DATA_TARGET, "write", 1)
    g.set_debug(debug)
    g.expect_sequence([
        ("part b: host write breakpoint reports only B0", bp_hit(g.sym("wr_end"), 0, debug, check_dr7=False)),
        ("part b: the guest reads back its own DR6 after a host data breakpoint",
         Expect("hlt", guest={"dr6": GUEST_DR6}), lambda: {"dr6": g.read_dr6(0x1008)}),
    ])
    # (c) a host instruction breakpoint fires between the guest's write and its read.
    debug = hw_bp(2, g.sym("xbp"), "exec")
    g.set_debug(debug)
    hit = g.expect_sequence([("part c: host instruction breakpoint reports only B2",
                              bp_hit(g.sym("xbp"), 2, debug, check_dr7=False))])
    g.set_debug(None)
    if hit[0] is not None:
        g.expect_sequence([("part c: the guest reads back its own DR6 after a host instruction breakpoint",
                            Expect("hlt", guest={"dr6": GUEST_DR6}), lambda: {"dr6": g.read_dr6(0x1010)})])


# ----------------------------------------------------------------------------
# exit_dr6_no_accumulation
# ----------------------------------------------------------------------------

NO_ACCUM_CITE = (
    "SDM §18.2.3 and §18.3.1 (each #DB reports the conditions of that event; B0-B3 are updated per event), "
    "APM §13.1.1.3; KVM api.rst KVM_EXIT_DEBUG (debug.arch.dr6 describes this exit). A cause bit of an "
    "earlier exit must not reappear in a later one (the AMD DR6 accumulation the seed fix addresses)."
)


def run_exit_dr6_no_accumulation(g: GuestRun) -> None:
    step = GuestDebug(single_step=True)
    d1 = hw_bp(1, DATA_TARGET, "write", 1)
    g.set_debug(d1)
    g.expect_sequence([("DR1 write breakpoint: B1 only", bp_hit(g.sym("w1_end"), 1, d1, check_dr7=False)),
                       ("stretch end", SYNC)])
    g.set_debug(step)
    g.expect_sequence([("step after the data breakpoint: BS only", step_trap(g.sym("s1"))),
                       ("second step: BS only", step_trap(g.sym("s2")))])
    d2 = hw_bp(2, g.sym("x2"), "exec")
    g.set_debug(d2)
    hit = g.expect_sequence([("DR2 instruction breakpoint: B2 only", bp_hit(g.sym("x2"), 2, d2, check_dr7=False))])
    if hit[0] is not None:
        g.set_debug(step)
        g.expect_sequence([("step off the instruction breakpoint: BS only", step_trap(g.sym("x2_end")))])
    g.set_debug(None)
    if g.stopped is None:
        g.set_pc(g.sym("x2_end"))
    g.expect("stretch end", SYNC)
    gd = GuestDebug(general_detect=True)
    g.set_debug(gd)
    g.expect_sequence([("general detect: BD only",
                        Expect("debug", exception=DB_VECTOR, pc=g.sym("g"), dr6=DR6_CLEAN | DR6_BD))])
    g.set_debug(step)
    if g.stopped is None:
        g.set_pc(g.sym("g_next"))  # skip the MOV (and the SYNC after it), as a debugger would
    g.expect_sequence([("step after general detect: BS only", step_trap(g.sym("g_next_end")))])


# ----------------------------------------------------------------------------
# step_across_pio / step_across_mmio
# ----------------------------------------------------------------------------

STEP_PIO_CITE = (
    "SDM §18.3.1.4 (a single-step trap after every instruction, IN/OUT included); KVM api.rst KVM_EXIT_IO "
    "(userspace completes the access, then KVM_RUN resumes) and KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_SINGLESTEP): "
    "the access exits first, the step trap is reported when the instruction completes, pc after it."
)
STEP_MMIO_CITE = (
    "SDM §18.3.1.4; KVM api.rst KVM_EXIT_MMIO (KVM emulates the instruction, userspace supplies or takes "
    "the data) and KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_SINGLESTEP): the MMIO exit comes first, then the step "
    "trap after the emulated instruction, pc after it, DR6.BS."
)


def run_step_across_pio(g: GuestRun) -> None:
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to the OUT", step_trap(g.sym("pio_out"))),
        ("OUT imm8 exits to userspace", Expect("io_out", port=PIO_PORT)),
        ("step trap after OUT imm8", step_trap(g.sym("pio_out_end"))),
        ("IN imm8 exits to userspace", Expect("io_in", port=PIO_PORT)),
        ("step trap after IN imm8", step_trap(g.sym("pio_in_end"))),
        ("step over MOV DX", step_trap(g.sym("pio_dx"))),
        ("OUT DX exits to userspace", Expect("io_out", port=PIO_PORT + 2)),
        ("step trap after OUT DX", step_trap(g.sym("pio_dx_end"))),
    ], stop_on_io=True)


def mmio_addr(mode: str) -> int:
    return 0xA0000 if mode == "real" else 0xC0000000


def run_step_across_mmio(g: GuestRun) -> None:
    a = mmio_addr(g.mode)
    g.expect("setup", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to the MMIO store", step_trap(g.sym("mmio_w"))),
        ("the store exits to userspace", Expect("mmio_write", addr=a)),
        ("step trap after the MMIO store", step_trap(g.sym("mmio_w_end"))),
        ("the load exits to userspace", Expect("mmio_read", addr=a)),
        ("step trap after the MMIO load", step_trap(g.sym("mmio_r_end"))),
    ], stop_on_io=True)


# ----------------------------------------------------------------------------
# inject_db / inject_bp
# ----------------------------------------------------------------------------

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
             Expect("exit", code=EXIT_HANDLER,
                    guest={"vector": vector, "dr6": DR6_CLEAN, "return_address": g.sym("inj_point")}),
             lambda: {"vector": g.read_uint(0x1010, 1), "dr6": g.read_dr6(0x1018),
                      "return_address": g.read_slot(0x1020)}),
        ])

    return run

# ----------------------------------------------------------------------------
# mov_ss_shadow
# ----------------------------------------------------------------------------

MOV_SS_CITE = (
    "SDM Vol.3A §6.8.3 Masking Exceptions and Interrupts When Switching Stacks (after MOV SS / POP SS, "
    "debug exceptions - single-step traps and data breakpoints - are inhibited until the boundary after "
    "the next instruction; the data breakpoint of the MOV SS load is then reported), §18.3.1.4; APM §8.2.2 "
    "and Vol.3 MOV/POP (SS loads inhibit #DB for one instruction); KVM api.rst KVM_EXIT_DEBUG. POP SS does "
    "not exist in 64-bit mode."
)


def run_mov_ss_shadow(g: GuestRun) -> None:
    g.expect("setup", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to MOV SS", step_trap(g.sym("mss"))),
        ("no trap after MOV SS: the next one follows the instruction after it", step_trap(g.sym("mss_next"))),
        ("stepping goes on normally", step_trap(g.sym("mss_next2"))),
    ])
    g.set_debug(None)
    g.expect("part a done", SYNC)
    if g.has("pss"):
        g.set_debug(GuestDebug(single_step=True))
        g.expect_sequence([
            ("step to PUSH SS", step_trap(g.sym("pss_push"))),
            ("step to POP SS", step_trap(g.sym("pss"))),
            ("no trap after POP SS: the next one follows the instruction after it", step_trap(g.sym("pss_next"))),
            ("stepping goes on normally after POP SS", step_trap(g.sym("pss_next2"))),
        ])
        g.set_debug(None)
    g.expect("part b done", SYNC)
    debug = hw_bp(0, DATA_TARGET, "rw", 2)
    g.set_debug(debug)
    g.expect_sequence([
        ("data breakpoint on the MOV SS load is reported after the next instruction",
         bp_hit(g.sym("mssm_next"), 0, debug, check_dr7=False)),
        ("part c done", SYNC),
    ])


# ----------------------------------------------------------------------------
# icebp
# ----------------------------------------------------------------------------

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
         Expect("hlt", guest={"vector": DB_VECTOR, "dr6": DR6_CLEAN, "return_address": g.sym("ice1_end")}),
         lambda: {"vector": g.read_uint(0x1010, 1), "dr6": g.read_dr6(0x1018), "return_address": g.read_slot(0x1020)}),
    ])
    # (b) with KVM_GUESTDBG_USE_HW_BP the #DB exits to the host instead.
    g.m.write(0x1010, b"\0")
    g.set_debug(use_hw_without_breakpoints())
    g.expect_sequence([
        ("INT1 exits to the host as a trap with no cause bits",
         Expect("debug", exception=DB_VECTOR, pc=g.sym("ice2_end"), dr6=DR6_CLEAN, dr7=DR7_FIXED_1)),
    ])
    g.set_debug(None)
    g.expect_sequence([("the guest goes on after the host's INT1 exit; its handler is not entered",
                        Expect("hlt", guest={"handler_vector": 0}),
                        lambda: {"handler_vector": g.read_uint(0x1010, 1)})])


# ----------------------------------------------------------------------------
# step_hlt
# ----------------------------------------------------------------------------

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
        ("single-step trap after HLT", step_trap(g.sym("h_end"))),
        ("stepping goes on after HLT", step_trap(g.sym("h_next"))),
    ], skip=("hlt",))
    if "hlt" in g.passed_exits:
        g.note("KVM reported KVM_EXIT_HLT before the step exit (accepted)")


# ----------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        Scenario("single_step", "single-step sti/xor/cpuid/mov/rdmsr/cli/nop with KVM_GUESTDBG_BLOCKIRQ",
                 static("single_step"), lambda g: run_single_step(g, block_irq=True), SINGLE_STEP_CITE),
        Scenario("single_step_no_blockirq", "the single_step program and checks without BLOCKIRQ "
                 "(no interrupt source exists here, so BLOCKIRQ changes nothing architectural)",
                 static("single_step"), lambda g: run_single_step(g, block_irq=False), SINGLE_STEP_CITE),
        Scenario("hw_exec_bp", "instruction breakpoint in DR0, DR1, DR2, DR3", static("hw_exec_bp"),
                 run_hw_exec_bp, HW_EXEC_CITE),
        Scenario("hw_write_bp", "write breakpoint in each DR, lengths 1/2/4 (8 in long mode)",
                 data_bp_source("write"), run_data_bp("write"), HW_DATA_CITE),
        Scenario("hw_rw_bp", "read/write breakpoint in each DR, lengths 1/2/4 (8 in long mode)",
                 data_bp_source("rw"), run_data_bp("rw"), HW_DATA_CITE),
        Scenario("hw_io_bp", "I/O breakpoint (CR4.DE) in each DR on OUT and IN, and a 4-port range",
                 io_bp_source, run_hw_io_bp, HW_IO_CITE),
        Scenario("sw_bp_int3", "INT3 with KVM_GUESTDBG_USE_SW_BP exits with #BP at the INT3",
                 static("sw_bp_int3"), run_sw_bp_int3, SW_BP_CITE),
        Scenario("gd_bit", "DR7.GD: MOV from/to DRn faults with DR6.BD", static("gd_bit"), run_gd_bit, GD_CITE),
        Scenario("guest_dr6_preserved", "the guest's DR6 survives host single-step and host breakpoints",
                 static("guest_dr6_preserved"), run_guest_dr6_preserved, GUEST_DR6_CITE),
        Scenario("exit_dr6_no_accumulation", "each exit's dr6 carries only its own cause",
                 static("exit_dr6_no_accumulation"), run_exit_dr6_no_accumulation, NO_ACCUM_CITE),
        Scenario("step_across_pio", "single-step OUT/IN that exit to userspace", static("step_across_pio"),
                 run_step_across_pio, STEP_PIO_CITE),
        Scenario("step_across_mmio", "single-step MMIO store and load", static("step_across_mmio"),
                 run_step_across_mmio, STEP_MMIO_CITE,
                 memory_size=lambda mode: 512 << 10 if mode == "real" else 16 << 20),
        Scenario("inject_db", "KVM_GUESTDBG_INJECT_DB reaches the guest's #DB handler", static("inject"),
                 run_inject(DB_VECTOR), INJECT_CITE.format(v=1), handlers={1: "db_handler"}),
        Scenario("inject_bp", "KVM_GUESTDBG_INJECT_BP reaches the guest's #BP handler", static("inject"),
                 run_inject(BP_VECTOR), INJECT_CITE.format(v=3), handlers={3: "bp_handler"}),
        Scenario("mov_ss_shadow", "MOV SS / POP SS delay the step trap and the data breakpoint",
                 static("mov_ss_shadow"), run_mov_ss_shadow, MOV_SS_CITE),
        Scenario("icebp", "INT1 (ICEBP) as a #DB trap with no DR6 cause, to the guest and to the host",
                 static("icebp"), run_icebp, ICEBP_CITE, handlers={1: "db_handler"}),
        Scenario("step_hlt", "single-step across HLT", static("step_hlt"), run_step_hlt, STEP_HLT_CITE),
    )
}

