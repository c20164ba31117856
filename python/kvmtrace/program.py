"""Guest programs: assembly (GNU as), freestanding static ELF executables, raw bytes.

A :class:`Program` is a list of segments to load, an entry point and a symbol table,
so traces can be symbolised later.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import kvmtrace._core as _core
from kvmtrace.exceptions import AssemblerError, ProgramError

#: Guest modes and their bitness (defined once, in the Rust core).
MODE_BITS: dict[str, int] = _core.MODE_BITS
DEFAULT_LOAD_ADDR = 0x8000


@dataclass(frozen=True)
class Segment:
    addr: int
    data: bytes
    memsz: int


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int
    size: int
    kind: str  # "func", "object" or "notype"


@dataclass
class Program:
    """Something a Machine can load: segments, an entry point and symbols."""

    segments: list[Segment]
    entry: int
    bits: int
    symbols: dict[str, Symbol] = field(default_factory=dict)
    source: str | None = None

    _sorted: list[Symbol] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, code: bytes, addr: int = DEFAULT_LOAD_ADDR, *, mode: str = "long") -> Program:
        if not code:
            raise ProgramError("program is empty: there is no instruction to run")
        return cls([Segment(addr, bytes(code), len(code))], addr, _bits(mode))

    def symbol(self, name: str) -> int:
        """Address of a symbol (raises ProgramError naming it if unknown)."""
        try:
            return self.symbols[name].addr
        except KeyError:
            known = ", ".join(sorted(self.symbols)[:12])
            raise ProgramError(f"unknown symbol {name!r} (known: {known})") from None

    def symbolize(self, addr: int) -> str:
        """``name+0xoff`` for the symbol containing ``addr``, else hex."""
        sym = self.lookup(addr)
        if sym is None:
            return f"{addr:#x}"
        off = addr - sym.addr
        return sym.name if off == 0 else f"{sym.name}+{off:#x}"

    def lookup(self, addr: int) -> Symbol | None:
        if self._sorted is None:
            self._sorted = sorted(
                (s for s in self.symbols.values() if s.kind in ("func", "notype")), key=lambda s: s.addr
            )
            self._keys = [s.addr for s in self._sorted]
        i = bisect.bisect_right(self._keys, addr) - 1
        while i >= 0:
            s = self._sorted[i]
            if s.size == 0 or addr < s.addr + s.size:
                # notype labels have no size: take the nearest label below.
                return s
            i -= 1
        return None

    @property
    def functions(self) -> list[Symbol]:
        return sorted((s for s in self.symbols.values() if s.kind == "func"), key=lambda s: s.addr)


def _bits(mode: str) -> int:
    try:
        return MODE_BITS[mode]
    except KeyError:
        raise ProgramError(f'mode {mode!r} is not "real", "protected" or "long"') from None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssemblerError(f"{name} not found: install GNU binutils (apt-get install binutils)")
    return path


def assemble(source: str, mode: str = "long", *, addr: int = DEFAULT_LOAD_ADDR) -> Program:
    """Assemble GNU as source for ``mode``'s bitness, linked at ``addr``.

    The source uses AT&T syntax unless it says ``.intel_syntax noprefix``. The entry
    point is ``_start`` when defined, else ``addr``. Labels become symbols; mark
    functions with ``.type name, @function`` and ``.size`` for function slices.
    """
    bits = _bits(mode)
    if not source.strip():
        raise AssemblerError("assembly source is empty")
    prefix = {16: ".code16\n", 32: ".code32\n", 64: ".code64\n"}[bits]
    as_flag = "--64" if bits == 64 else "--32"
    emu = "elf_x86_64" if bits == 64 else "elf_i386"
    with tempfile.TemporaryDirectory(prefix="kvmtrace-as-") as tmp:
        src = Path(tmp, "guest.s")
        src.write_text(prefix + source + "\n")
        obj, elf = Path(tmp, "guest.o"), Path(tmp, "guest.elf")
        r = subprocess.run([_tool("as"), as_flag, "-o", str(obj), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssemblerError(_as_message(r.stderr, source))
        r = subprocess.run(
            [_tool("ld"), "-m", emu, "-N", "-static", "--no-dynamic-linker", "--no-warn-rwx-segments",
             f"-Ttext={addr:#x}",
             "-e", "_start" if re.search(r"(?m)^\s*_start\s*:", source) else f"{addr:#x}",
             "-o", str(elf), str(obj)],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise AssemblerError("linking the guest failed: " + r.stderr.strip().replace(str(tmp) + "/", ""))
        try:
            prog = parse_elf(elf.read_bytes(), mode=mode)
        except ProgramError as e:
            if "no loadable" in str(e):
                raise AssemblerError("the assembled program is empty: the source has no instructions or data") from None
            raise
    prog.source = source
    return prog


def _as_message(stderr: str, source: str) -> str:
    lines = source.splitlines()
    out = []
    for line in stderr.splitlines():
        m = re.match(r".*?guest\.s:(\d+): (.*)", line)
        if m:
            n = int(m.group(1)) - 1  # our prefix line
            text = lines[n - 1].strip() if 0 < n <= len(lines) else ""
            out.append(f"line {n}: {m.group(2)}" + (f"\n    {text}" if text else ""))
        elif line.strip() and "Assembler messages" not in line:
            out.append(line.strip())
    return "GNU as rejected the guest source:\n" + "\n".join(out or [stderr.strip()])


_EM = {3: "x86 (i386)", 62: "x86-64", 40: "ARM", 183: "AArch64", 243: "RISC-V", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64"}


def load_elf(path: str | os.PathLike[str], mode: str | None = None) -> Program:
    """Read a freestanding static ELF executable from ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ProgramError(f"cannot read ELF file {os.fspath(path)!r}: {e.strerror}") from None
    return parse_elf(data, mode=mode)


def parse_elf(data: bytes, mode: str | None = None) -> Program:
    """Parse an ELF32/ELF64 x86 executable: PT_LOAD segments, entry and symbol table."""
    if len(data) < 16 or data[:4] != b"\x7fELF":
        raise ProgramError("not an ELF file (missing the \\x7fELF magic)")
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2):
        raise ProgramError(f"bad ELF class {ei_class} (expected 1 = ELF32 or 2 = ELF64)")
    if ei_data != 1:
        raise ProgramError("big-endian ELF: x86 guests are little-endian")
    is64 = ei_class == 2
    hdr_fmt = "<HHIQQQIHHHHHH" if is64 else "<HHIIIIIHHHHHH"
    hdr_size = struct.calcsize(hdr_fmt)
    if len(data) < 16 + hdr_size:
        raise ProgramError(f"truncated ELF file: {len(data)} bytes, the header alone needs {16 + hdr_size}")
    (e_type, e_machine, _ver, e_entry, e_phoff, e_shoff, _flags, _ehsize,
     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(hdr_fmt, data, 16)
    if e_machine not in (3, 62):
        name = _EM.get(e_machine, f"machine {e_machine}")
        raise ProgramError(f"ELF is for {name}; kvmtrace runs x86 guests (EM_386 or EM_X86_64)")
    if e_type != 2:
        raise ProgramError(f"ELF type {e_type} is not an executable (ET_EXEC): link it static, not PIE or relocatable")
    bits = 64 if is64 else 32
    if mode is not None:
        want = _bits(mode)
        if is64 and want != 64:
            raise ProgramError(f"ELF64 executable needs mode='long', not {mode!r}")
        if not is64 and want == 64:
            raise ProgramError("ELF32 executable needs mode='protected' or 'real', not 'long'")
        bits = want
    ph_fmt = "<IIQQQQQQ" if is64 else "<IIIIIIII"
    segments = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + struct.calcsize(ph_fmt) > len(data):
            raise ProgramError(f"truncated ELF file: program header {i} lies past the end ({len(data)} bytes)")
        f = struct.unpack_from(ph_fmt, data, off)
        if is64:
            p_type, _flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _align = f
        else:
            p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _flags, _align = f
        if p_type != 1 or p_memsz == 0:
            continue
        if p_offset + p_filesz > len(data):
            raise ProgramError(f"truncated ELF file: segment {i} needs bytes up to {p_offset + p_filesz:#x}, file has {len(data):#x}")
        if p_memsz < p_filesz:
            raise ProgramError(f"bad ELF segment {i}: p_memsz {p_memsz:#x} is smaller than p_filesz {p_filesz:#x}")
        segments.append(Segment(p_paddr or p_vaddr, data[p_offset:p_offset + p_filesz], p_memsz))
    if not segments:
        raise ProgramError("ELF has no loadable (PT_LOAD) segment")
    symbols = _elf_symbols(data, is64, e_shoff, e_shentsize, e_shnum)
    return Program(segments, e_entry, bits, symbols)


def _elf_symbols(data: bytes, is64: bool, shoff: int, shentsize: int, shnum: int) -> dict[str, Symbol]:
    sh_fmt = "<IIQQQQIIQQ" if is64 else "<IIIIIIIIII"
    sh_size = struct.calcsize(sh_fmt)
    if shoff == 0 or shnum == 0:
        return {}
    if shoff + shnum * shentsize > len(data):
        raise ProgramError(
            f"truncated ELF file: {shnum} section headers at {shoff:#x} end past the file's {len(data):#x} bytes"
        )
    if shentsize < sh_size:
        raise ProgramError(f"bad ELF section header size {shentsize} (expected >= {sh_size})")
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    out: dict[str, Symbol] = {}
    for s in sections:
        sh_type = s[1]
        if sh_type != 2:  # SHT_SYMTAB
            continue
        off, size, link, entsize = s[4], s[5], s[6], s[9]
        if link >= len(sections) or entsize == 0:
            continue
        stroff, strsize = sections[link][4], sections[link][5]
        strtab = data[stroff:stroff + strsize]
        for j in range(size // entsize):
            e = off + j * entsize
            if e + entsize > len(data):
                break
            if is64:
                st_name, st_info, _o, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", data, e)
            else:
                st_name, st_value, st_size, st_info, _o, st_shndx = struct.unpack_from("<IIIBBH", data, e)
            kind = {0: "notype", 1: "object", 2: "func"}.get(st_info & 0xF)
            if kind is None or st_shndx == 0 or st_name == 0:
                continue
            end = strtab.find(b"\0", st_name)
            name = strtab[st_name:end if end >= 0 else None].decode(errors="replace")
            if name and not name.startswith(".") and not name.startswith("$"):
                out.setdefault(name, Symbol(name, st_value, st_size, kind))
    return out
