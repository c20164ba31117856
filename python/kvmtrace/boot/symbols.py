"""Where a kernel's symbols come from: its ELF symbol table, a System.map, or the
kallsyms tables inside the image (in that order of preference)."""

from __future__ import annotations

import os
from pathlib import Path

from kvmtrace.boot.kallsyms import find_kallsyms
from kvmtrace.exceptions import ProgramError
from kvmtrace.program import Symbol, parse_elf

_TEXT_TYPES = frozenset("tTwW")


def parse_system_map(text: str) -> dict[str, Symbol]:
    """``nm``-format lines (``ffffffff81000000 T _text``) -> symbols (first name wins)."""
    out: dict[str, Symbol] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            addr = int(parts[0], 16)
        except ValueError:
            raise ProgramError(f"System.map line {n} does not start with a hex address: {line!r}") from None
        kind = "func" if parts[1] in _TEXT_TYPES else "object"
        out.setdefault(parts[2], Symbol(parts[2], addr, 0, kind))
    if not out:
        raise ProgramError("the System.map has no symbols")
    if len(out) == 1 and next(iter(out.values())).addr == (1 << 64) - 1:
        raise ProgramError(
            "this System.map is a placeholder (Debian ships the real one in the linux-image-*-dbg package); "
            "leave system_map out to use the kernel's own kallsyms"
        )
    return out


def read_system_map(path: str | os.PathLike[str]) -> dict[str, Symbol]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise ProgramError(f"cannot read System.map {os.fspath(path)!r}: {e.strerror}") from None
    return parse_system_map(text)


def kallsyms_symbols(vmlinux: bytes) -> dict[str, Symbol]:
    out: dict[str, Symbol] = {}
    for e in find_kallsyms(vmlinux):
        out.setdefault(e.name, Symbol(e.name, e.addr, 0, e.kind))
    return out


def kernel_symbols(vmlinux: bytes, system_map: str | os.PathLike[str] | None = None) -> tuple[dict[str, Symbol], str]:
    """(symbols, source): ``"system_map"`` if one is given, else ``"elf"`` when the
    vmlinux has a symbol table, else ``"kallsyms"``."""
    if system_map is not None:
        return read_system_map(system_map), "system_map"
    elf = parse_elf(vmlinux).symbols
    if elf:
        return elf, "elf"
    return kallsyms_symbols(vmlinux), "kallsyms"
