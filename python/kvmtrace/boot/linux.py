"""``Machine.load_linux``: boot a Linux kernel (bzImage or vmlinux) and know its symbols.

The Rust core decompresses a bzImage's payload on the host (the in-guest decompressor
would take minutes under an emulating KVM), loads the vmlinux's segments at their
physical addresses, writes the zero page (setup header, e820 map, command line,
initrd) and enters the kernel at its 64-bit entry with the boot protocol's GDT. This
module picks the command line and the symbols, and returns a :class:`Program` whose
segments and symbols are at the kernel's linked virtual addresses (0xffffffff8...),
the addresses breakpoints and trace pcs use.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kvmtrace._core as _core
from kvmtrace.boot.symbols import kernel_symbols
from kvmtrace.exceptions import ProgramError
from kvmtrace.program import Program, Segment

#: Always on the default command line: the serial console, early output on it, the
#: kernel at its linked address (no KASLR, so symbols match), no reboot on panic.
BASE_CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr panic=-1"
#: Without an in-kernel irqchip there is no LAPIC or IOAPIC to find.
NO_IRQCHIP_CMDLINE = "nolapic noapic"


@dataclass
class KernelProgram(Program):
    """A loaded kernel: segments and symbols at its linked addresses, plus where the
    loader put things (``boot``: entry, kernel_end, zero_page, cmdline_addr, initrd,
    format, version, cmdline, symbols_from)."""

    boot: dict[str, Any] = field(default_factory=dict)


def default_cmdline(irqchip: bool, hidden: tuple[str, ...] = ()) -> str:
    """The command line ``load_linux`` uses when none is given, fitting the Machine.

    Hidden CPU features are also cleared with ``clearcpuid=``: some hosts (this
    project's nested PVM one) let the guest see host CPUID bits the table lacks.
    """
    line = BASE_CMDLINE if irqchip else f"{BASE_CMDLINE} {NO_IRQCHIP_CMDLINE}"
    return f"{line} clearcpuid={','.join(hidden)}" if hidden else line


def _read(what: str, path: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(path, (bytes, bytearray, memoryview)):
        return bytes(path)
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ProgramError(f"cannot read {what} {os.fspath(path)!r}: {e.strerror}") from None


def virtual_segments(vmlinux: bytes) -> list[Segment]:
    """The vmlinux's PT_LOAD segments at their virtual (linked) addresses."""
    if vmlinux[4:5] != b"\x02":
        raise ProgramError("a Linux vmlinux must be ELF64")
    phoff, = struct.unpack_from("<Q", vmlinux, 32)
    phentsize, phnum = struct.unpack_from("<HH", vmlinux, 54)
    out = []
    for i in range(phnum):
        p_type, _f, off, vaddr, _pa, filesz, memsz, _al = struct.unpack_from("<IIQQQQQQ", vmlinux, phoff + i * phentsize)
        if p_type == 1 and memsz:
            out.append(Segment(vaddr, vmlinux[off:off + filesz], memsz))
    return out


def load_linux(machine: Any, kernel: str | os.PathLike[str] | bytes, cmdline: str | None = None,
               initrd: str | os.PathLike[str] | bytes | None = None,
               system_map: str | os.PathLike[str] | None = None) -> KernelProgram:
    """Load ``kernel`` into ``machine`` (a :class:`kvmtrace.Machine`) and return its Program.

    ``cmdline`` defaults to :func:`default_cmdline`; symbols come from ``system_map``
    if given, else the vmlinux's symbol table, else the image's kallsyms.
    """
    if machine.mode != "long":
        raise ProgramError(f"Linux boots through its 64-bit entry: use Machine(mode='long'), not {machine.mode!r}")
    image = _read("kernel", kernel)
    if cmdline is None:
        cmdline = default_cmdline(machine.irqchip, getattr(machine, "hidden_cpu_features", ()))
    rd = None if initrd is None else _read("initrd", initrd)
    info = _core.boot_linux(machine._m, image, cmdline, rd)
    vmlinux = info.pop("vmlinux")
    symbols, source = kernel_symbols(vmlinux, system_map)
    _core.set_symbols(machine._m, [(s.addr, s.size, s.name) for s in symbols.values() if s.kind == "func"])
    return KernelProgram(virtual_segments(vmlinux), info["entry"], 64, symbols,
                         boot={**info, "cmdline": cmdline, "symbols_from": source})
