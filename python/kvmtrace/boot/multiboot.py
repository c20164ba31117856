"""``Machine.load_multiboot``: Multiboot v1 kernels (kvm-unit-tests, small kernels).

The Rust core finds the multiboot header, loads the ELF32 segments (or the a.out
kludge's range) with BSS zeroed, writes the information structure (mem_lower/
mem_upper, memory map, command line, modules, boot loader name) and enters in 32-bit
protected mode with paging off, EAX = 0x2BADB002 and EBX = the structure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kvmtrace._core as _core
from kvmtrace.exceptions import ProgramError
from kvmtrace.program import Program, Segment, parse_elf




def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ProgramError(f"cannot read {os.fspath(path)!r}: {e.strerror}") from None


def _module(m: Any) -> tuple[bytes, str]:
    """A module path (its command line is the path) or (path, command line)."""
    if isinstance(m, tuple):
        path, line = m
        return _read(path), str(line)
    return _read(m), os.fspath(m)


def load_multiboot(machine: Any, kernel: str | os.PathLike[str], cmdline: str | None = None,
                   modules: Iterable[Any] = ()) -> Program:
    """Load a Multiboot v1 kernel into ``machine`` and return its Program (ELF symbols if any)."""
    image = _read(kernel)
    mods = [_module(m) for m in modules]
    info = _core.boot_multiboot(machine._m, image, cmdline or "", mods)
    if image[:4] == b"\x7fELF":
        prog = parse_elf(image)
        prog.entry = info["entry"]
    else:
        prog = Program([Segment(info["entry"], b"", 0)], info["entry"], 32)
    _core.set_symbols(machine._m, [(s.addr, s.size, s.name) for s in prog.symbols.values()
                                   if s.kind in ("func", "notype")])
    return prog
