"""Argument parsing shared by the commands: numbers, addresses and symbols, ``--break``
specs, the guest's kind, mode and loading, stored traces and symbol files.

Every problem is a :class:`~kvmtrace.cli.output.UsageProblem` naming the option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kvmtrace._core import MODES, Dr7
from kvmtrace.cli.output import usage
from kvmtrace.exceptions import InvalidConfigError

BP_KINDS = tuple(Dr7.RW_BITS)  # the breakpoint kinds DR7's R/W field encodes
BP_LENGTHS = tuple(sorted(Dr7.LEN_BITS))
ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1  # e_ident[EI_CLASS] of a 32-bit ELF
RAW_SUFFIXES = (".bin", ".raw", ".img", ".com")
ASM_SUFFIXES = (".s", ".asm")


def _one_of(values: tuple[Any, ...]) -> str:
    words = [str(v) for v in values]
    return ", ".join(words[:-1]) + " or " + words[-1]


def parse_int(text: str, what: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        usage(f"{what}: {text!r} is not a number (use e.g. 0x8000 or 32768)")


def parse_mode(mode: str, option: str = "--mode") -> str:
    if mode not in MODES:
        usage(f"{option} {mode!r}: use {_one_of(MODES)}")
    return mode


def parse_addr(text: str, program: Any, what: str) -> int:
    """A number, a symbol, or symbol+offset."""
    text = text.strip()
    try:
        v = int(text.replace("_", ""), 0)
    except ValueError:
        pass
    else:
        if v < 0:
            usage(f"{what}: address {text!r} is negative")
        return v
    if text[:1].isdigit() or text[:1] == "-":
        usage(f"{what}: {text!r} is not a number (use e.g. 0x8000) or a symbol")
    name, _, off = text.partition("+")
    if program is None or not program.symbols:
        usage(f"{what}: {text!r} is not a number and the guest has no symbols (use e.g. 0x8000)")
    if name not in program.symbols:
        near = ", ".join(sorted(program.symbols)[:10])
        usage(f"{what}: unknown symbol {name!r} (known: {near})")
    return int(program.symbol(name)) + (parse_int(off, what) if off else 0)


def parse_break(spec: str, program: Any) -> Any:
    """``ADDR[:kind[:len]]`` as a HwBreakpoint."""
    from kvmtrace._core import HwBreakpoint

    parts = spec.split(":")
    what = f"--break {spec!r}"
    if len(parts) > 3:
        usage(f"{what}: use ADDR[:kind[:len]] with kind {'|'.join(BP_KINDS)} and len "
              f"{'|'.join(map(str, BP_LENGTHS))}")
    addr = parse_addr(parts[0], program, what)
    kind = parts[1] if len(parts) > 1 and parts[1] else "exec"
    if kind not in BP_KINDS:
        usage(f"{what}: kind {kind!r} is not one of {', '.join(BP_KINDS)}")
    length = parse_int(parts[2], what) if len(parts) > 2 and parts[2] else 1
    if length not in BP_LENGTHS:
        usage(f"{what}: length {length} is not {_one_of(BP_LENGTHS)}")
    try:
        return HwBreakpoint(addr, kind, length)
    except InvalidConfigError as e:
        usage(f"{what}: {e}")


#: Steps of a ``--window`` that gives neither a count nor ``until=``.
DEFAULT_WINDOW_STEPS = 1000
WINDOW_METAVAR = "SYM[:N|:until=SYM2][:repeat=K][:irq]"
WINDOW_HELP = (f"Run free and single-step only from each execution of SYM: N instructions (default "
               f"{DEFAULT_WINDOW_STEPS}) or until SYM2, K times (default: every time); irq lets interrupts in.")
RING_HELP = ("Flight recorder: keep only the last N events per vCPU; with --out they are written there only "
             "if the run ends with a fault.")


def window_option(more: str = "") -> Any:
    """The ``--window`` option of ``trace`` and ``boot`` (``more``: what the command adds)."""
    return typer.Option(None, "--window", "-w", metavar=WINDOW_METAVAR, help=f"{WINDOW_HELP} {more}".strip())


def ring_option(more: str = "") -> Any:
    """The ``--ring`` option of ``trace`` and ``boot``."""
    return typer.Option(None, "--ring", min=1, metavar="N", help=f"{RING_HELP} {more}".strip())


def parse_window(spec: str, program: Any, what: str = "--window") -> Any:
    """``START[:N|:steps=N][:until=END][:repeat=K][:irq]`` as a Window (addresses resolved).

    START and END are numbers, symbols or symbol+offset; without N or until= a window
    is DEFAULT_WINDOW_STEPS steps. ``irq`` lets interrupts in (BLOCKIRQ off).
    """
    from kvmtrace._core import Window

    head, *opts = spec.split(":")
    start = parse_addr(head, program, f"{what} {spec!r}")
    kw: dict[str, Any] = {}
    for o in opts:
        key, eq, val = o.partition("=")
        key = key.strip()
        if not eq and key.replace("_", "").isdigit():
            key, val, eq = "steps", key, "="
        if key in ("steps", "until", "repeat") and not val.strip():
            usage(f"{what} {spec!r}: {key}= needs a value")
        if key == "steps":
            kw["steps"] = parse_int(val, f"{what} {spec!r} steps")
        elif key == "until":
            kw["until"] = parse_addr(val, program, f"{what} {spec!r} until")
        elif key == "repeat":
            kw["repeat"] = parse_int(val, f"{what} {spec!r} repeat")
        elif key == "irq" and not eq:
            kw["block_irq"] = False
        else:
            usage(f"{what} {spec!r}: unknown part {o!r} (use START[:N][:until=END][:repeat=K][:irq])")
    if "steps" not in kw and "until" not in kw:
        kw["steps"] = DEFAULT_WINDOW_STEPS
    try:
        return Window(start, **kw)
    except InvalidConfigError as e:
        usage(f"{what} {spec!r}: {e}")


def guest_kind(guest: str, asm: bool, elf: bool, raw: bool) -> tuple[str, Path | None]:
    """("bundled" | "asm" | "elf" | "raw", the file): from the flags, else the file's magic or suffix."""
    import kvmtrace.guests as guests

    if sum((asm, elf, raw)) > 1:
        usage("pass at most one of --asm, --elf and --raw")
    path = Path(guest)
    if not path.exists():
        if not (asm or elf or raw) and guest in guests.names():
            return "bundled", None
        usage(f"guest file {guest!r} not found: pass an ELF, assembly or raw code file, or a bundled guest "
              f"({', '.join(guests.names())})")
    if path.is_dir():
        usage(f"guest {guest!r} is a directory: pass a file")
    for flag, kind in ((asm, "asm"), (elf, "elf"), (raw, "raw")):
        if flag:
            return kind, path
    try:
        with open(path, "rb") as f:
            magic = f.read(len(ELF_MAGIC))
    except OSError as e:
        usage(f"cannot read guest file {guest!r}: {e.strerror}")
    if magic == ELF_MAGIC:
        return "elf", path
    if path.suffix.lower() in ASM_SUFFIXES:
        return "asm", path
    if path.suffix.lower() in RAW_SUFFIXES:
        return "raw", path
    usage(f"cannot tell what {guest!r} is: pass --elf, --asm (GNU as source) or --raw (code bytes)")


def guest_mode(kind: str, path: Path | None, mode: str | None) -> str:
    """``--mode``, else protected for an ELF32 and long for everything else."""
    if mode is not None:
        return parse_mode(mode)
    if kind == "elf" and path is not None:
        with open(path, "rb") as f:
            head = f.read(len(ELF_MAGIC) + 1)
        return "protected" if len(head) == len(ELF_MAGIC) + 1 and head[-1] == ELFCLASS32 else "long"
    return "long"


def load_guest(m: Any, kind: str, guest: str, path: Path | None, load_addr: int) -> Any:
    """Load the guest into Machine ``m``; the Program (symbols) it returns."""
    import kvmtrace.guests as guests

    if kind == "bundled":
        return m.load_asm(guests.source(guest))
    if path is None:
        usage(f"guest {guest!r}: no file to load")
    try:
        if kind == "asm":
            return m.load_asm(path.read_text())
        if kind == "elf":
            return m.load_elf(path)
        return m.load_program(path.read_bytes(), addr=load_addr)
    except UnicodeDecodeError:
        usage(f"{guest!r} is not a text file: is it an ELF (--elf) or raw code (--raw)?")
    except OSError as e:
        usage(f"cannot read guest file {guest!r}: {e.strerror}")


def parse_registers(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def read_stored_trace(file: Path, run: str | None) -> Any:
    """The trace stored at ``file`` (TraceFileError, an exit code 2, when it cannot be read)."""
    from kvmtrace.export import read_trace

    return read_trace(file, run=run)


def symbols_arg(elf: Path | None, asm: Path | None, mode: str) -> Any:
    """The Program of ``--elf`` or ``--asm`` (None when neither is given)."""
    from kvmtrace.program import assemble, load_elf

    if elf is not None and asm is not None:
        usage("pass --elf or --asm, not both")
    if elf is not None:
        if not elf.is_file():
            usage(f"ELF file {str(elf)!r} not found")
        return load_elf(elf, mode)
    if asm is not None:
        if not asm.is_file():
            usage(f"assembly file {str(asm)!r} not found")
        return assemble(asm.read_text(), mode)
    return None
