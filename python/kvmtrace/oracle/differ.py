"""``kvmtrace.diff``: run a guest on KVM and on the reference model and compare them step by step."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError, ProgramError
from kvmtrace.oracle.compare import compare
from kvmtrace.oracle.kvm_side import KvmRun, run_kvm
from kvmtrace.oracle.reference import UnicornReference, load_unicorn
from kvmtrace.oracle.report import DiffReport
from kvmtrace.program import Program, assemble, load_elf, parse_elf

DEFAULT_MAX_STEPS = 1_000_000  # max_steps=None: enough for any test program, bounded for a runaway one
DEFAULT_MEMORY_SIZE = 16 << 20
MIN_MEMORY_SIZE = 256 << 10  # the reserved layout (IVT .. page tables) and room for code
REFERENCES = ("unicorn",)
ELF_MAGIC = b"\x7fELF"
# A reproducer written by ``kvmtrace fuzz`` names its mode in a comment line.
_MODE_LINE = re.compile(r"^\s*#\s*kvmtrace-mode:\s*(\w+)", re.MULTILINE)

Guest = str | os.PathLike[str] | bytes | Program


def source_mode(text: str) -> str | None:
    """The mode a reproducer's ``# kvmtrace-mode: M`` line names, if any."""
    m = _MODE_LINE.search(text)
    return m.group(1) if m else None


def guest_mode(guest: Guest) -> str | None:
    """The mode recorded in a guest's source (a fuzz reproducer), or None."""
    if isinstance(guest, Program):
        return source_mode(guest.source or "")
    if isinstance(guest, os.PathLike) or (isinstance(guest, str) and _is_path(guest)):
        path = Path(guest)
        head = path.read_bytes()[:4096]
        return None if head.startswith(ELF_MAGIC) else source_mode(head.decode(errors="replace"))
    if isinstance(guest, str):
        return source_mode(guest)
    return None


def _is_path(s: str) -> bool:
    return "\n" not in s and len(s) < 4096 and os.path.isfile(s)


def resolve_guest(guest: Guest, mode: str) -> Program:
    """A Program from assembly source, a path (ELF or assembly), ELF bytes, raw code or a Program."""
    if isinstance(guest, Program):
        return guest
    if isinstance(guest, (bytes, bytearray, memoryview)):
        data = bytes(guest)
        return parse_elf(data, mode=mode) if data.startswith(ELF_MAGIC) else Program.from_bytes(data, mode=mode)
    if isinstance(guest, os.PathLike) or (isinstance(guest, str) and _is_path(guest)):
        path = Path(guest)
        try:
            head = path.read_bytes()[:4]
        except OSError as e:
            raise ProgramError(f"cannot read guest {os.fspath(path)!r}: {e.strerror}") from None
        if head == ELF_MAGIC:
            return load_elf(path, mode)
        return assemble(path.read_text(errors="replace"), mode)
    if isinstance(guest, str):
        return assemble(guest, mode)
    raise InvalidConfigError(
        f"invalid guest: expected assembly source, a path to an ELF or assembly file, bytes or a Program, "
        f"got {type(guest).__name__}")


def _check(mode: str, max_steps: int | None, reference: str, memory_size: int) -> int:
    if mode not in _core.MODES:
        raise InvalidConfigError(f"invalid mode: {mode!r} (expected one of {', '.join(_core.MODES)})")
    if reference not in REFERENCES:
        raise InvalidConfigError(f"invalid reference: {reference!r} (available: {', '.join(REFERENCES)})")
    if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < MIN_MEMORY_SIZE:
        raise InvalidConfigError(f"invalid memory_size: expected at least {MIN_MEMORY_SIZE:#x} bytes, got {memory_size!r}")
    if max_steps is None:
        return DEFAULT_MAX_STEPS
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidConfigError(f"invalid max_steps: expected a positive int or None, got {max_steps!r}")
    return max_steps


def reference_for(kvm: KvmRun) -> UnicornReference:
    """The reference model started from the KVM run's initial image and registers."""
    return UnicornReference(mode=kvm.mode, memory_size=kvm.memory_size, registers=kvm.registers,
                            layout=kvm.layout, image=kvm.image)


def diff(guest: Guest, mode: str = "long", max_steps: int | None = None, reference: str = "unicorn", *,
         memory_size: int = DEFAULT_MEMORY_SIZE, timeout: float | None = None) -> DiffReport:
    """Single-step ``guest`` on KVM and on the reference and report where they first differ.

    ``guest`` is assembly source, a path to an ELF or assembly file, ELF bytes, raw code
    bytes, or a Program. Both sides start from the same memory image and registers;
    ports and MMIO are answered the same way (reads return a fixed byte per address,
    writes are recorded and compared). ``max_steps`` bounds the run (None: 1,000,000).
    Needs Unicorn (``pip install 'kvmtrace[reference]'``).
    """
    steps = _check(mode, max_steps, reference, memory_size)
    program = resolve_guest(guest, mode)
    load_unicorn()  # a missing extra fails before KVM runs
    t0 = time.perf_counter()
    kvm = run_kvm(program, mode, memory_size=memory_size, max_steps=steps, timeout=timeout)
    report = compare(kvm, reference_for(kvm), reference)
    report.timings["total_s"] = time.perf_counter() - t0
    return report
