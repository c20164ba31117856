"""Shared benchmark guests (16-bit real-mode machine code, loaded at LOAD_ADDR).

All guests assume the benchmark VM setup used by ``kvm_step.c`` and
``pyloop.py`` (``kvmtrace.Machine(mode="real")`` starts the same way): every
segment base/selector 0, so offset == linear == physical address,
rip = LOAD_ADDR, rflags = 2, sp = 0x7000 (kvmtrace: 0x8000; STEP_LOOP does not
use the stack and the hot guest sets sp itself).

The bytes are hard-coded; the GNU ``as`` source they were assembled from is
kept next to them (``*_ASM``), and :func:`assemble` / the
``test_guest_bytes_match_assembly`` check re-assemble it with
``as --32`` + ``objcopy -O binary`` to prove the bytes are what the comments
claim.

Single-step semantics (measured on KVM/SVM): a single-step #DB is a trap, so
``kvm_run->debug.arch.pc`` is the address of the *next* instruction to run,
i.e. the first event after starting at 0x8000 has pc = 0x8001.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from kvmtrace._core import EXIT_PORT

LOAD_ADDR = 0x8000
"""Guest-physical (= linear, real mode with base 0) load and entry address."""

MEMORY_SIZE = 1 << 20
"""Guest memory of the benchmark VMs: the guests live below 1 MiB (real mode)."""

# EXIT_PORT (kvmtrace's isa-debug-exit port) is where the guests write when they
# are done (an OUT exit, then HLT); their machine code spells it as 0xf4.

# --------------------------------------------------------------------------
# STEP_LOOP: tight infinite loop for dense single-step benchmarks.
#
#   offset  bytes      instruction
#   0x0000: 40         inc  %ax
#   0x0001: 01 c3      add  %ax, %bx
#   0x0003: 49         dec  %cx
#   0x0004: eb fa      jmp  0x0000
# --------------------------------------------------------------------------
STEP_LOOP_ASM = """\
.code16
start:
  inc %ax
  add %ax, %bx
  dec %cx
  jmp start
"""
STEP_LOOP: bytes = bytes.fromhex("40 01c3 49 ebfa")

STEP_LOOP_INSN_OFFSETS: tuple[int, ...] = (0x0, 0x1, 0x3, 0x4)
"""Offsets (from LOAD_ADDR) of the loop's instructions, in execution order."""


def step_loop_expected_pcs(n: int, base: int = LOAD_ADDR) -> list[int]:
    """Architectural pc of the first *n* single-step events of STEP_LOOP.

    Trap semantics: event *i* reports the address of instruction *i + 1*.
    Sequence: 0x8001, 0x8003, 0x8004, 0x8000, 0x8001, ...
    """
    offs = STEP_LOOP_INSN_OFFSETS
    k = len(offs)
    return [base + offs[(i + 1) % k] for i in range(n)]


# --------------------------------------------------------------------------
# HOT_GUEST: a loop that calls a small "hot" function HOT_CALLS times, then
# writes to port 0xf4 and halts.  For sparse-breakpoint benches (a HW/SW
# breakpoint at LOAD_ADDR + HOT_FUNC_OFFSET fires exactly HOT_CALLS times).
#
#   offset  bytes              instruction
#   0x0000: bc 00 70           mov  $0x7000, %sp
#   0x0003: 66 b9 <u32 calls>  mov  $HOT_CALLS, %ecx
#   0x0009: e8 07 00           call hot            (-> 0x0013)
#   0x000c: 66 49              dec  %ecx
#   0x000e: 75 f9              jnz  0x0009
#   0x0010: e6 f4              out  %al, $0xf4
#   0x0012: f4                 hlt
#   hot:
#   0x0013: 40                 inc  %ax
#   0x0014: 01 c3              add  %ax, %bx
#   0x0016: 31 da              xor  %bx, %dx
#   0x0018: c3                 ret
#
# (No "mov %ax, %ss": it would open an interrupt/#DB shadow and skew
# single-step counts.  SS is already 0 in the benchmark setup.)
#
# Single-stepping it yields exactly 2 + 7 * calls debug events before the
# OUT exit (call, inc, add, xor, ret, dec, jnz per iteration).
# --------------------------------------------------------------------------
HOT_CALLS = 100_000
HOT_FUNC_OFFSET = 0x13
"""Offset of ``hot`` from LOAD_ADDR (absolute address = LOAD_ADDR + 0x13)."""

HOT_GUEST_ASM = """\
.code16
start:
  mov $0x7000, %sp
  mov ${calls}, %ecx
1:
  call hot
  dec %ecx
  jnz 1b
  out %al, $0xf4
  hlt
hot:
  inc %ax
  add %ax, %bx
  xor %bx, %dx
  ret
"""

_HOT_PREFIX = bytes.fromhex("bc0070 66b9")
_HOT_SUFFIX = bytes.fromhex("e80700 6649 75f9 e6f4 f4 40 01c3 31da c3")


def make_hot_guest(calls: int = HOT_CALLS) -> bytes:
    """HOT_GUEST with a different call count (1 <= calls < 2**32)."""
    if not 1 <= calls < 2**32:
        raise ValueError(f"calls must be in [1, 2**32), got {calls}")
    code = _HOT_PREFIX + calls.to_bytes(4, "little") + _HOT_SUFFIX
    assert code[HOT_FUNC_OFFSET] == 0x40  # inc %ax, first insn of hot
    return code


def hot_guest_single_step_events(calls: int = HOT_CALLS) -> int:
    """Number of single-step debug exits before the guest's OUT to 0xf4."""
    return 2 + 7 * calls


HOT_GUEST: bytes = make_hot_guest(HOT_CALLS)


# --------------------------------------------------------------------------
# Optional: re-assemble the sources above to verify the hard-coded bytes.
# --------------------------------------------------------------------------
def assemble(source: str) -> bytes:
    """Assemble 16-bit GNU-as source to flat binary (needs binutils)."""
    as_ = shutil.which("as")
    objcopy = shutil.which("objcopy")
    if not as_ or not objcopy:
        raise FileNotFoundError("binutils 'as' and 'objcopy' are required to assemble guests")
    with tempfile.TemporaryDirectory(prefix="kvmtrace-guest-") as d:
        src = os.path.join(d, "g.S")
        obj = os.path.join(d, "g.o")
        out = os.path.join(d, "g.bin")
        with open(src, "w") as f:
            f.write(source)
        subprocess.run([as_, "--32", "-o", obj, src], check=True, capture_output=True)
        subprocess.run(
            [objcopy, "-O", "binary", "-j", ".text", obj, out], check=True, capture_output=True
        )
        with open(out, "rb") as f:
            return f.read()


__all__ = [
    "LOAD_ADDR",
    "EXIT_PORT",
    "MEMORY_SIZE",
    "STEP_LOOP",
    "STEP_LOOP_ASM",
    "STEP_LOOP_INSN_OFFSETS",
    "step_loop_expected_pcs",
    "HOT_GUEST",
    "HOT_GUEST_ASM",
    "HOT_CALLS",
    "HOT_FUNC_OFFSET",
    "make_hot_guest",
    "hot_guest_single_step_events",
    "assemble",
]
