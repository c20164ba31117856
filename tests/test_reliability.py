"""Reliability (issue 6): bad guests and files, misuse, interruption, sinks, resources.

kvmtrace must keep working through misbehaving guests and odd calls, say clearly
what went wrong (a KvmTraceError subclass), and never lose recorded events. The
configuration fuzzing lives in test_fuzz.py, the multi-vCPU runs in
test_multivcpu.py.

Ctrl-C is simulated by sending SIGINT to the main thread from a timer thread
while a trace runs. Tests that need the Parquet sink (kvmtrace.export) use
pytest.importorskip until that module exists.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kvmtrace
from kvmtrace import (
    AssemblerError,
    GuestDebug,
    GuestFaultError,
    GuestMemoryError,
    HwBreakpoint,
    InvalidConfigError,
    KvmTraceError,
    Machine,
    MachineBusyError,
    MachineClosedError,
    ProgramError,
    SinkError,
    StopReason,
)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

# An endless loop without conditional branches: every pc has one successor.
SPIN_LOOP = """
_start:
    xor %eax, %eax
loop:
    inc %rax
    add $3, %rbx
    jmp loop
"""


# Helpers ---------------------------------------------------------------------------


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    return len(os.listdir("/proc/self/task"))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def check_columns(t: kvmtrace.Trace) -> int:
    """A trace is one consistent table with seq 0..n-1; returns n."""
    n = len(t)
    cols = t.to_numpy()
    assert all(len(c) == n for c in cols.values()), {k: len(c) for k, c in cols.items()}
    assert np.array_equal(t.seq, np.arange(n, dtype=np.uint64)), "seq is not 0..n-1"
    assert t.stop_reason != StopReason.UNKNOWN, t._t.stop_reason
    assert t.event_count >= n
    return n


@contextlib.contextmanager
def sigint_after(delay: float) -> Iterator[None]:
    """Deliver SIGINT to the main thread after ``delay`` s unless the block ended."""
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None
    done = threading.Event()

    def fire() -> None:
        if not done.wait(delay):
            signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    th = threading.Thread(target=fire, name="sigint-timer", daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
        signal.signal(signal.SIGINT, previous)


def successor_map(pcs: np.ndarray) -> dict[int, int]:
    """pc -> next pc, from a trace of a loop without conditional branches."""
    succ: dict[int, int] = {}
    for a, b in zip(pcs[:-1].tolist(), pcs[1:].tolist()):
        assert succ.setdefault(a, b) == b, f"{a:#x} has two successors"
    return succ


def reference_pcs(source: str, n: int, mode: str = "long") -> np.ndarray:
    with Machine(mode=mode) as m:
        m.load_asm(source)
        t = m.trace(GuestDebug(single_step=True), max_events=n)
        assert len(t) == n
        return np.array(t.pc, copy=True)


def run_python(code: str, *args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, **kw)


# Guest files: garbage, truncated and wrong-architecture ELF -------------------------


@pytest.fixture(scope="module")
def elfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny valid static executables built with GNU as/ld, plus the .o file."""
    d = tmp_path_factory.mktemp("elf")
    out = {}
    for name, as_flag, emu, code in [
        ("elf64", "--64", "elf_x86_64", ".code64\n"),
        ("elf32", "--32", "elf_i386", ".code32\n"),
    ]:
        src = d / f"{name}.s"
        src.write_text(code + ".globl _start\n_start:\n    nop\n    mov $7, %eax\nmarker:\n    hlt\n")
        obj, exe = d / f"{name}.o", d / name
        subprocess.run(["as", as_flag, "-o", obj, src], check=True, capture_output=True)
        subprocess.run(["ld", "-m", emu, "-N", "-static", "-Ttext=0x8000", "-e", "_start", "-o", exe, obj],
                       check=True, capture_output=True)
        out[name], out[name + ".o"] = exe, obj
    return out


def elf64_fields(data: bytes) -> dict[str, int]:
    (e_type, e_machine, _v, e_entry, e_phoff, e_shoff, _f, _eh, e_phentsize, e_phnum,
     e_shentsize, e_shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    return dict(entry=e_entry, phoff=e_phoff, shoff=e_shoff, phentsize=e_phentsize, phnum=e_phnum,
                shentsize=e_shentsize, shnum=e_shnum)


def arm_elf() -> bytes:
    """A minimal ELF32 executable for ARM (EM_ARM = 40): `b .` at 0x8000."""
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    hdr = struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, 0x8000, 52, 0, 0x5000200, 52, 32, 1, 40, 0, 0)
    ph = struct.pack("<IIIIIIII", 1, 84, 0x8000, 0x8000, 4, 4, 5, 4)
    return ident + hdr + ph + struct.pack("<I", 0xEAFFFFFE)


def aarch64_elf() -> bytes:
    """A minimal ELF64 executable for AArch64 (EM_AARCH64 = 183): `b .` at 0x8000."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr = struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0x8000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 120, 0x8000, 0x8000, 4, 4, 4)
    return ident + hdr + ph + struct.pack("<I", 0x14000000)


@pytest.mark.requires_kvm
@pytest.mark.parametrize(("name", "mode"), [("elf64", "long"), ("elf32", "protected")])
def test_valid_elf_baseline_runs(elfs: dict[str, Path], name: str, mode: str) -> None:
    with Machine(mode=mode) as m:
        prog = m.load_elf(elfs[name])
        assert prog.entry == 0x8000 and prog.symbol("marker") > 0x8000
        t = m.trace(GuestDebug(), timeout=5)
        assert t.stop_reason == StopReason.HLT
        assert m.regs["rax"] & 0xFFFFFFFF == 7


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"", r"not an ELF"),
        (b"\x7fEL", r"not an ELF"),
        (b"hello world, this is not an executable\n" * 4, r"not an ELF"),
        (bytes(range(256)) * 4, r"not an ELF"),
        (b"\x7fELF", r"not an ELF|truncated"),
        (b"\x7fELF" + bytes([3, 1, 1]) + bytes(64), r"ELF class 3"),
        (b"\x7fELF" + bytes([2, 2, 1]) + bytes(64), r"big-endian"),
        (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9), r"truncated"),
    ],
    ids=["empty", "short-magic", "text", "binary", "magic-only", "bad-class", "big-endian", "header-cut"],
)
def test_garbage_elf_is_a_program_error(data: bytes, pattern: str) -> None:
    with pytest.raises(ProgramError, match=pattern):
        kvmtrace.parse_elf(data)


def test_unreadable_elf_paths(tmp_path: Path) -> None:
    missing = tmp_path / "missing.elf"
    with pytest.raises(ProgramError, match="missing.elf"):
        kvmtrace.load_elf(missing)
    with pytest.raises(ProgramError, match=re.escape(str(tmp_path))):
        kvmtrace.load_elf(tmp_path)  # a directory


@pytest.mark.parametrize("name", ["elf64", "elf32"])
def test_truncated_elf_never_loads_silently(elfs: dict[str, Path], name: str) -> None:
    """Every prefix of a valid ELF: a ProgramError saying "truncated" (or another
    clear ProgramError), never a different exception and never a silent success
    of a file whose own header declares more bytes than it has."""
    full = elfs[name].read_bytes()
    is64 = full[4] == 2
    fmt = "<HHIQQQIHHHHHH" if is64 else "<HHIIIIIHHHHHH"
    f = struct.unpack_from(fmt, full, 16)
    shoff, shentsize, shnum = f[5], f[10], f[11]
    declared_end = shoff + shentsize * shnum
    assert declared_end == len(full)  # ld puts the section headers last
    good = kvmtrace.parse_elf(full)
    silently_accepted = []
    for cut in range(len(full)):
        data = full[:cut]
        try:
            prog = kvmtrace.parse_elf(data)
        except ProgramError as e:
            assert str(e), cut
            continue
        # Parsed: the code must be the real code, and the file must not be short of
        # what its header declares (that loses the symbol table without a word).
        assert prog.segments == good.segments and prog.entry == good.entry, cut
        silently_accepted.append(cut)
    assert not silently_accepted, (
        f"{len(silently_accepted)} truncated files (cut at {silently_accepted[0]}..{silently_accepted[-1]} of "
        f"{len(full)} bytes) parsed without error although the ELF header declares section headers up to "
        f"byte {declared_end}; their symbols were dropped silently")


@pytest.mark.parametrize(
    ("make", "pattern"),
    [(arm_elf, r"ARM.*x86"), (aarch64_elf, r"AArch64.*x86")],
    ids=["arm", "aarch64"],
)
def test_wrong_architecture_elf(tmp_path: Path, make: Callable[[], bytes], pattern: str) -> None:
    path = tmp_path / "foreign.elf"
    path.write_bytes(make())
    with pytest.raises(ProgramError, match=pattern):
        kvmtrace.load_elf(path)


def test_relocatable_object_is_not_an_executable(elfs: dict[str, Path]) -> None:
    with pytest.raises(ProgramError, match="executable"):
        kvmtrace.load_elf(elfs["elf64.o"])


@pytest.mark.requires_kvm
def test_elf_for_the_wrong_mode(elfs: dict[str, Path]) -> None:
    with Machine(mode="protected") as m, pytest.raises(ProgramError, match="long"):
        m.load_elf(elfs["elf64"])
    with Machine(mode="long") as m, pytest.raises(ProgramError, match="protected"):
        m.load_elf(elfs["elf32"])


@pytest.mark.requires_kvm
def test_elf_segment_or_entry_outside_guest_memory(elfs: dict[str, Path], tmp_path: Path) -> None:
    full = bytearray(elfs["elf64"].read_bytes())
    f = elf64_fields(full)
    ph = f["phoff"]
    # PT_LOAD moved above the 16 MiB of guest memory.
    seg = bytearray(full)
    struct.pack_into("<QQ", seg, ph + 16, 0x2000000, 0x2000000)  # p_vaddr, p_paddr
    (tmp_path / "seg.elf").write_bytes(seg)
    # Entry point outside guest memory.
    ent = bytearray(full)
    struct.pack_into("<Q", ent, 24, 0x40000000)
    (tmp_path / "entry.elf").write_bytes(ent)
    with Machine(mode="long") as m:
        with pytest.raises(GuestMemoryError, match="outside guest memory"):
            m.load_elf(tmp_path / "seg.elf")
        with pytest.raises(InvalidConfigError, match="entry"):
            m.load_elf(tmp_path / "entry.elf")
        # The Machine still works.
        m.load_elf(elfs["elf64"])
        assert m.trace(GuestDebug(), timeout=5).stop_reason == StopReason.HLT


@pytest.mark.requires_kvm
@pytest.mark.parametrize("memsz", [1 << 40, (1 << 64) - 1])
def test_elf_with_huge_memsz_is_refused_without_allocating(elfs: dict[str, Path], memsz: int) -> None:
    """A corrupt p_memsz (the .bss size) must give a clear error, not an attempt to
    allocate that many zero bytes (MemoryError/OverflowError, or an OOM kill)."""
    data = bytearray(elfs["elf64"].read_bytes())
    struct.pack_into("<Q", data, elf64_fields(data)["phoff"] + 40, memsz)  # p_memsz
    before = rss_bytes()
    with Machine(mode="long") as m:
        try:
            prog = kvmtrace.parse_elf(bytes(data), mode="long")
        except ProgramError:
            return  # refused at parse time: fine
        start = time.monotonic()
        with pytest.raises(KvmTraceError, match="memory|memsz|segment"):
            m.load_program(prog)
        assert time.monotonic() - start < 1.0
    assert rss_bytes() - before < 64 << 20


@pytest.mark.requires_kvm
def test_elf_with_4gib_bss_is_refused_quickly() -> None:
    """p_memsz = 4 GiB on a 16 MiB machine: refused before touching 4 GiB of RAM.
    Run in a child with a 2 GiB address-space limit so a regression cannot take
    the test host down."""
    code = textwrap.dedent("""
        import resource, struct, subprocess, sys, tempfile, time, os
        import kvmtrace
        d = tempfile.mkdtemp()
        open(d + "/a.s", "w").write(".globl _start\\n_start:\\n nop\\n hlt\\n")
        subprocess.run(["as", "--64", "-o", d + "/a.o", d + "/a.s"], check=True)
        subprocess.run(["ld", "-m", "elf_x86_64", "-N", "-static", "-Ttext=0x8000", "-e", "_start",
                        "-o", d + "/a", d + "/a.o"], check=True, capture_output=True)
        data = bytearray(open(d + "/a", "rb").read())
        struct.pack_into("<Q", data, 64 + 40, 1 << 32)
        m = kvmtrace.Machine(mode="long")
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        t0 = time.monotonic()
        try:
            m.load_program(kvmtrace.parse_elf(bytes(data), mode="long"))
            print("LOADED")
        except kvmtrace.KvmTraceError as e:
            print("KVMTRACE_ERROR", type(e).__name__, e)
        except BaseException as e:
            print("OTHER", type(e).__name__, e)
        print("SECONDS", time.monotonic() - t0)
    """)
    r = run_python(code, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "KVMTRACE_ERROR" in r.stdout, r.stdout + r.stderr[-2000:]


# Assembler errors and empty programs ------------------------------------------------


def test_assembler_error_shows_the_message_and_line() -> None:
    src = "nop\nnop\n    movq %rax, %bogus\nnop\n"
    with pytest.raises(AssemblerError) as info:
        kvmtrace.assemble(src, "long")
    msg = str(info.value)
    assert isinstance(info.value, InvalidConfigError)
    assert "line 3" in msg, msg
    assert "bad register name" in msg, msg  # GNU as's own words
    assert "movq %rax, %bogus" in msg, msg  # the offending source line
    # Nothing that points at a deleted temporary file.
    assert "kvmtrace-as-" not in msg and "guest.s" not in msg, msg


def test_assembler_error_in_intel_syntax_and_real_mode() -> None:
    with pytest.raises(AssemblerError, match=r"line 2"):
        kvmtrace.assemble(".intel_syntax noprefix\nmov rax, [rbx+]\n", "long")
    with pytest.raises(AssemblerError, match=r"line 1.*\n.*mov %rax, %rbx"):
        kvmtrace.assemble("mov %rax, %rbx\n", "real")


def test_link_error_names_the_undefined_symbol() -> None:
    with pytest.raises(AssemblerError, match="nowhere"):
        kvmtrace.assemble("jmp nowhere\n", "long")


@pytest.mark.parametrize("src", ["", "   \n\t\n", "# only a comment\n", "_start:\n"],
                         ids=["empty", "blank", "comment", "label"])
def test_empty_program_says_it_is_empty(src: str) -> None:
    """A source with no instructions: an InvalidConfigError that says so (not
    ELF jargon about the temporary file it was linked into)."""
    with pytest.raises(InvalidConfigError) as info:
        kvmtrace.assemble(src, "long")
    assert re.search(r"empty|no (code|instruction)", str(info.value)), str(info.value)


@pytest.mark.requires_kvm
def test_empty_raw_program_is_refused() -> None:
    with Machine(mode="long") as m, pytest.raises(ProgramError, match="empty"):
        m.load_program(b"")


@pytest.mark.requires_kvm
@pytest.mark.parametrize("mode", ["real", "protected", "long"])
def test_machine_with_nothing_loaded_ends_cleanly(mode: str) -> None:
    """Running zeroed memory: a trace or a GuestFaultError, within the timeout."""
    with Machine(mode=mode, memory_size=0x20000) as m:
        start = time.monotonic()
        try:
            t = m.trace(GuestDebug(), timeout=3)
            check_columns(t)
        except GuestFaultError as e:
            check_columns(e.trace)  # type: ignore[attr-defined]
        assert time.monotonic() - start < 3.5


# Guests that fault, leave memory or never exit --------------------------------------


@pytest.mark.requires_kvm
@pytest.mark.parametrize("mode", ["protected", "long"])
@pytest.mark.parametrize(
    ("body", "fault_offset"),
    [("nop\nnop\nud2\n", 2), ("xor %eax, %eax\nxor %edx, %edx\ndiv %eax\n", 4)],
    ids=["ud2", "divide-error"],
)
def test_exception_without_idt_is_a_triple_fault(mode: str, body: str, fault_offset: int) -> None:
    """#UD / #DE with an empty IDT: #NP on delivery, #DF, then shutdown (triple
    fault). The trace keeps every instruction before the fault."""
    with Machine(mode=mode) as m:
        m.load_asm(body)
        with pytest.raises(GuestFaultError) as info:
            m.trace(GuestDebug(single_step=True), max_events=1000, timeout=5)
        e = info.value
        assert "triple fault" in str(e) or "shut down" in str(e), str(e)
        t = e.trace  # type: ignore[attr-defined]
        assert m.last_trace is t
        check_columns(t)
        assert t.stop_reason == StopReason.SHUTDOWN
        assert e.stop_reason == "shutdown"  # type: ignore[attr-defined]
        # One single-step trap per instruction before the faulting one.
        pcs = t.pc.tolist()
        assert pcs and pcs[-1] == 0x8000 + fault_offset, [hex(p) for p in pcs]
        assert e.registers["rip"] == 0x8000 + fault_offset  # type: ignore[attr-defined]
        # raise_on_fault=False returns the same as a Trace.
        m.reset()
        t2 = m.trace(GuestDebug(single_step=True), max_events=1000, timeout=5, raise_on_fault=False)
        assert t2.stop_reason == StopReason.SHUTDOWN and t2.pc.tolist() == pcs
        # After a reset and a good program the Machine runs normally.
        m.load_asm("nop\nhlt\n")
        m.reset()
        assert m.trace(GuestDebug(), timeout=5).stop_reason == StopReason.HLT


@pytest.mark.requires_kvm
@pytest.mark.parametrize("mode", ["real", "protected", "long"])
def test_jump_outside_guest_memory(mode: str) -> None:
    """Fetching code where no memory is: KVM cannot run it, kvmtrace says so with a
    GuestFaultError (KvmInternalError), the trace up to the jump kept."""
    if mode == "real":
        size, src, target = 0x20000, "ljmp $0x9000, $0x0\n", 0x90000
    elif mode == "protected":
        size, src, target = 16 << 20, "mov $0x2000000, %eax\njmp *%eax\n", 0x2000000
    else:
        size, src, target = 16 << 20, "mov $0x2000000, %eax\njmp *%rax\n", 0x2000000
    with Machine(mode=mode, memory_size=size) as m:
        m.load_asm(src)
        start = time.monotonic()
        with pytest.raises(GuestFaultError) as info:
            m.trace(GuestDebug(single_step=True), max_events=1000, timeout=5)
        assert time.monotonic() - start < 5
        e = info.value
        assert re.search(r"internal error|shut down", str(e)), str(e)
        t = e.trace  # type: ignore[attr-defined]
        check_columns(t)
        assert t.stop_reason in (StopReason.INTERNAL_ERROR, StopReason.SHUTDOWN)
        assert int(t.pc[-1]) == target, [hex(p) for p in t.pc]


@pytest.mark.requires_kvm
@pytest.mark.parametrize("restart", ["reset", "set_entry"])
@pytest.mark.parametrize(
    "access",
    ["in $0x80, %al", "out %al, $0x80", "mov 0x2000000, %eax", "mov %eax, 0x2000000"],
    ids=["pio-read", "pio-write", "mmio-read", "mmio-write"],
)
def test_restart_after_an_unhandled_access_starts_at_the_entry(access: str, restart: str) -> None:
    """A trace stopped at an unhandled port/MMIO access leaves KVM an emulation to
    finish. reset()/set_entry() must not let that half-done instruction move the
    vCPU: the next trace starts at the entry point, like on a fresh Machine."""
    with Machine(mode="long") as m:
        m.load_asm(f"nop\nnop\nnop\nnop\n{access}\nhlt\n")
        first = m.trace(GuestDebug(), timeout=5)
        assert first.stop_reason in (StopReason.IO, StopReason.MMIO)
        if restart == "reset":
            m.reset()
        else:
            m.set_entry(0x8000)
        assert m.regs["rip"] == 0x8000
        t = m.trace(GuestDebug(single_step=True), max_events=3)
        assert [hex(p) for p in t.pc] == ["0x8001", "0x8002", "0x8003"], "the restart did not begin at the entry"


@pytest.mark.requires_kvm
@pytest.mark.parametrize("mode", ["real", "protected", "long"])
def test_spin_without_exits_stops_at_the_timeout(mode: str) -> None:
    """`jmp .` with no debug exits: stop_reason timeout, back within timeout + slack."""
    with Machine(mode=mode) as m:
        m.load_asm("spin: jmp spin\n")
        timeout = 0.5
        start = time.monotonic()
        t = m.trace(GuestDebug(), timeout=timeout)
        elapsed = time.monotonic() - start
        assert t.stop_reason == StopReason.TIMEOUT
        assert timeout <= elapsed < timeout + 0.3, elapsed
        assert len(t) == 0
        assert m.regs["rip"] == m.program.symbol("spin")  # type: ignore[union-attr]


@pytest.mark.requires_kvm
@pytest.mark.parametrize("mode", ["real", "protected", "long"])
def test_timeout_keeps_the_events_before_the_spin(mode: str) -> None:
    """Breakpoint hits, then a silent endless loop: the hits are kept."""
    with Machine(mode=mode) as m:
        prog = m.load_asm("_start:\n mov $5, %cx\nhit:\n nop\n dec %cx\n jnz hit\nspin:\n jmp spin\n")
        dbg = GuestDebug(hw_breakpoints=[HwBreakpoint(prog.symbol("hit"))])
        start = time.monotonic()
        t = m.trace(dbg, timeout=0.5)
        assert time.monotonic() - start < 0.8
        assert t.stop_reason == StopReason.TIMEOUT
        assert check_columns(t) == 5
        assert t.pc.tolist() == [prog.symbol("hit")] * 5


@pytest.mark.requires_kvm
def test_timeout_during_single_step_keeps_a_consistent_trace() -> None:
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        start = time.monotonic()
        t = m.trace(GuestDebug(single_step=True), timeout=0.3, registers=("rax",))
        assert time.monotonic() - start < 0.6
        assert t.stop_reason == StopReason.TIMEOUT
        n = check_columns(t)
        assert n > 100 and t.event_count == n
        assert m.regs["rip"] == int(t.pc[-1])
        assert m.regs["rax"] == int(t.registers["rax"][-1])


@pytest.mark.requires_kvm
def test_timeout_with_two_spinning_vcpus() -> None:
    with Machine(mode="long", vcpus=2) as m:
        m.load_asm("spin: jmp spin\n")
        start = time.monotonic()
        t = m.trace(GuestDebug(), timeout=0.4)
        assert time.monotonic() - start < 0.7
        assert t.stop_reason == StopReason.TIMEOUT


# Misuse: closed Machines, threads, re-entrancy --------------------------------------


CLOSED_CALLS: list[tuple[str, Callable[[Machine], Any]]] = [
    ("trace", lambda m: m.trace()),
    ("trace-debug", lambda m: m.trace(GuestDebug(), max_events=1)),
    ("run_once", lambda m: m.run_once()),
    ("vcpu.run_once", lambda m: m.vcpu(0).run_once()),
    ("read", lambda m: m.read(0x8000, 4)),
    ("write", lambda m: m.write(0x1000, b"x")),
    ("load", lambda m: m.load(b"\x90", 0x8000)),
    ("load_program", lambda m: m.load_program(b"\xf4")),
    ("load_asm", lambda m: m.load_asm("hlt")),
    ("set_entry", lambda m: m.set_entry(0x8000)),
    ("entry", lambda m: m.entry),
    ("reset", lambda m: m.reset()),
    ("reset-vcpu", lambda m: m.vcpu(0).reset()),
    ("regs-get", lambda m: m.regs["rax"]),
    ("regs-set", lambda m: m.regs.__setitem__("rax", 1)),
    ("regs-len", lambda m: len(m.regs)),
    ("get_register", lambda m: m.get_register("rip")),
    ("set_register", lambda m: m.set_register("rip", 0x8000)),
    ("registers", lambda m: m.registers()),
    ("set_guest_debug", lambda m: m.vcpu(0).set_guest_debug(GuestDebug(single_step=True))),
    ("set_guest_debug-none", lambda m: m.vcpu(0).set_guest_debug(None)),
    ("set_idt_handler", lambda m: m.set_idt_handler(3, 0x8000)),
    ("host_caps", lambda m: m.host_caps),
]


@pytest.mark.requires_kvm
@pytest.mark.parametrize(("name", "call"), CLOSED_CALLS, ids=[c[0] for c in CLOSED_CALLS])
def test_every_call_on_a_closed_machine_raises_machine_closed(name: str, call: Callable[[Machine], Any]) -> None:
    m = Machine(mode="long")
    m.load_asm("hlt")
    vcpu, regs = m.vcpu(0), m.regs  # handles taken before the close
    m.close()
    with pytest.raises(MachineClosedError, match="closed"):
        call(m)
    with pytest.raises(MachineClosedError):
        vcpu.run_once()
    with pytest.raises(MachineClosedError):
        regs["rip"]
    m.close()  # idempotent
    assert m.closed and "closed" in repr(m)


@pytest.mark.requires_kvm
def test_context_manager_closes_even_on_error() -> None:
    with pytest.raises(ZeroDivisionError), Machine(mode="long") as m:
        m.load_asm("hlt")
        1 / 0  # noqa: B018
    assert m.closed
    with pytest.raises(MachineClosedError):
        m.trace(max_events=1)


@pytest.mark.requires_kvm
def test_second_thread_is_refused_while_a_trace_runs() -> None:
    """While one thread traces, every call from another thread raises
    MachineBusyError at once (a Machine runs one operation at a time)."""
    with Machine(mode="long") as m:
        m.load_asm("spin: jmp spin\n")
        result: dict[str, Any] = {}

        def tracer() -> None:
            try:
                result["trace"] = m.trace(GuestDebug(), timeout=1.5)
            except BaseException as e:  # noqa: BLE001
                result["error"] = e

        th = threading.Thread(target=tracer)
        th.start()
        try:
            deadline = time.monotonic() + 1.0
            while True:  # wait until the tracer holds the Machine
                try:
                    m.read(0, 1)
                except MachineBusyError:
                    break
                assert time.monotonic() < deadline, "the tracing thread never started"
                time.sleep(0.005)
            calls: list[Callable[[], Any]] = [
                lambda: m.trace(GuestDebug(single_step=True), max_events=5),
                lambda: m.read(0x8000, 2),
                lambda: m.write(0x1000, b"x"),
                lambda: m.regs["rip"],
                lambda: m.vcpu(0).regs.__setitem__("rax", 5),
                lambda: m.registers(),
                lambda: m.run_once(),
                lambda: m.reset(),
                lambda: m.set_entry(0x8000),
                lambda: m.load_asm("hlt"),
                lambda: m.vcpu(0).set_guest_debug(None),
                lambda: m.set_idt_handler(1, 0x8000),
                lambda: m.close(),
            ]
            for i, call in enumerate(calls):
                start = time.monotonic()
                with pytest.raises(MachineBusyError, match="busy"):
                    call()
                assert time.monotonic() - start < 0.5, f"call {i} blocked instead of being refused"
            assert not m.closed
        finally:
            th.join()
        assert "error" not in result, repr(result.get("error"))
        t = result["trace"]
        assert t.stop_reason == StopReason.TIMEOUT
        # Nothing the refused calls asked for happened.
        assert m.read(0x1000, 1) == b"\0" and m.regs["rax"] != 5
        m.reset()
        assert m.trace(GuestDebug(single_step=True), max_events=3).stop_reason == StopReason.MAX_EVENTS


@pytest.mark.requires_kvm
def test_many_threads_hammering_one_machine() -> None:
    """Threads racing on one Machine: every call succeeds or raises
    MachineBusyError; the Machine stays consistent."""
    ref = reference_pcs(SPIN_LOOP, 50)
    errors: list[BaseException] = []
    counts = {"ok": 0, "busy": 0}
    lock = threading.Lock()
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        stop = time.monotonic() + 1.5

        def worker(k: int) -> None:
            rng = np.random.default_rng(k)
            ops: list[Callable[[], Any]] = [
                lambda: m.trace(GuestDebug(single_step=True), max_events=int(rng.integers(1, 40))),
                lambda: m.read(0x8000, 16),
                lambda: m.write(0x1000 + 8 * k, bytes([k]) * 8),
                lambda: m.regs["rip"],
                lambda: m.registers(),
                lambda: m.set_register("r15", k),
                lambda: m.vcpu(0).set_guest_debug(None),
            ]
            while time.monotonic() < stop:
                op = ops[int(rng.integers(len(ops)))]
                try:
                    op()
                    key = "ok"
                except MachineBusyError:
                    key = "busy"
                except BaseException as e:  # noqa: BLE001
                    with lock:
                        errors.append(e)
                    return
                with lock:
                    counts[key] += 1

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, [repr(e) for e in errors]
        assert counts["ok"] > 0, counts
        for k in range(4):  # the last write of each thread, if any, is whole
            assert m.read(0x1000 + 8 * k, 8) in (bytes(8), bytes([k]) * 8)
        m.reset()
        t = m.trace(GuestDebug(single_step=True), max_events=50)
        assert np.array_equal(t.pc, ref)


@pytest.mark.requires_kvm
def test_reentrant_call_from_a_handler_is_refused() -> None:
    """An I/O handler calling back into its own Machine gets MachineBusyError
    (no deadlock); the trace raises it with the events so far."""
    with Machine(mode="long") as m:
        m.load_asm("nop\nout %al, $0x80\nhlt\n")

        def handler(port: int, data: bytes | None, size: int, vcpu: int) -> None:
            m.read(0x8000, 1)

        with pytest.raises(MachineBusyError) as info:
            m.trace(GuestDebug(single_step=True), io_handler=handler, timeout=5)
        t = info.value.trace  # type: ignore[attr-defined]
        assert check_columns(t) == 1  # the trap after the nop; the out never completed
        assert m.read(0x8000, 1) == b"\x90"  # usable again


@pytest.mark.requires_kvm
@pytest.mark.parametrize("field", ["io_handler", "mmio_handler"])
def test_non_callable_handler_is_refused_up_front(field: str) -> None:
    with Machine(mode="long") as m:
        m.load_asm("out %al, $0x80\nhlt\n")
        with pytest.raises(InvalidConfigError, match=field):
            m.trace(GuestDebug(), timeout=5, **{field: 5})


@pytest.mark.requires_kvm
@pytest.mark.parametrize("sink", [5, object(), "", b"/tmp/x"], ids=["int", "object", "empty-str", "bytes"])
def test_unusable_sink_is_refused_up_front(sink: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink that is neither a path nor an object with write/close: an
    InvalidConfigError (or SinkError) naming the sink, before the guest runs.
    (An empty path must not mean the current directory.)"""
    monkeypatch.chdir(tmp_path)  # whatever happens, nothing lands in the repository
    with Machine(mode="long") as m:
        m.load_asm("nop\nhlt\n")
        with pytest.raises((InvalidConfigError, SinkError), match="sink"):
            m.trace(GuestDebug(single_step=True), sink=sink, timeout=5)
        assert m.regs["rip"] == 0x8000, "the guest ran although the sink was unusable"


@pytest.mark.requires_kvm
@pytest.mark.parametrize("size", [1 << 40, 1 << 63, (1 << 64) - 1])
def test_huge_memory_read_is_an_error_not_an_abort(size: int) -> None:
    """Machine.read(addr, huge) must raise GuestMemoryError; it must not allocate
    first (Rust aborts the whole process on a failed allocation). Run in a child
    process so an abort shows as a failure instead of killing pytest."""
    code = textwrap.dedent(f"""
        import kvmtrace
        m = kvmtrace.Machine(mode="long")
        try:
            m.read(0, {size})
            print("READ")
        except kvmtrace.GuestMemoryError as e:
            print("GUEST_MEMORY_ERROR", e)
        except BaseException as e:
            print("OTHER", type(e).__name__, e)
    """)
    r = run_python(code, timeout=60)
    assert r.returncode == 0, f"the process died with status {r.returncode}: {r.stderr[-800:]}"
    assert r.stdout.startswith("GUEST_MEMORY_ERROR"), r.stdout


# Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.requires_kvm
def test_ctrl_c_during_single_step_trace_keeps_everything() -> None:
    """SIGINT while a long single-step trace runs: KeyboardInterrupt whose .trace
    holds every event up to the interrupt; the vCPU continues exactly from there."""
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        start = time.monotonic()
        with sigint_after(0.4), pytest.raises(KeyboardInterrupt) as info:
            m.trace(GuestDebug(single_step=True), timeout=60, registers=("rax", "rbx"))
        assert time.monotonic() - start < 1.5, "Ctrl-C was not acted on promptly"
        t = info.value.trace  # type: ignore[attr-defined]
        assert isinstance(t, kvmtrace.Trace)
        assert m.last_trace is t
        assert t.stop_reason == StopReason.INTERRUPTED
        n = check_columns(t)
        assert n > 1000 and t.event_count == n
        # Each recorded rax/rbx is the loop's own count: no row missing in between.
        rax, rbx = t.registers["rax"].astype(np.int64), t.registers["rbx"].astype(np.int64)
        assert set(np.diff(rax).tolist()) <= {0, 1} and set(np.diff(rbx).tolist()) <= {0, 3}
        # Nothing ran after the last recorded event...
        last_pc = int(t.pc[-1])
        assert m.regs["rip"] == last_pc
        assert m.regs["rax"] == int(rax[-1]) and m.regs["rbx"] == int(rbx[-1])
        # ...and a second trace continues right there.
        succ = successor_map(t.pc)
        t2 = m.trace(GuestDebug(single_step=True), max_events=10)
        assert int(t2.pc[0]) == succ[last_pc], (hex(last_pc), hex(int(t2.pc[0])))
        assert all(succ[a] == b for a, b in zip(t2.pc[:-1].tolist(), t2.pc[1:].tolist()))


@pytest.mark.requires_kvm
def test_ctrl_c_while_the_guest_runs_without_exits() -> None:
    with Machine(mode="long") as m:
        m.load_asm("spin: jmp spin\n")
        start = time.monotonic()
        with sigint_after(0.3), pytest.raises(KeyboardInterrupt) as info:
            m.trace(GuestDebug(), timeout=60)
        assert time.monotonic() - start < 1.0
        t = info.value.trace  # type: ignore[attr-defined]
        assert t.stop_reason == StopReason.INTERRUPTED and len(t) == 0
        assert m.regs["rip"] == 0x8000
        t = m.trace(GuestDebug(single_step=True), max_events=3)
        assert t.pc.tolist() == [0x8000] * 3


@pytest.mark.requires_kvm
def test_ctrl_c_during_run_once() -> None:
    with Machine(mode="long") as m:
        m.load_asm("spin: jmp spin\n")
        start = time.monotonic()
        with sigint_after(0.3), pytest.raises(KeyboardInterrupt):
            m.run_once()
        assert time.monotonic() - start < 1.0
        m.vcpu(0).set_guest_debug(GuestDebug(single_step=True))
        x = m.run_once()
        assert x.reason == "debug" and x.pc == 0x8000


@pytest.mark.requires_kvm
def test_ctrl_c_during_a_python_sink_write() -> None:
    """Ctrl-C that lands while the sink's write() runs is still a Ctrl-C: a
    KeyboardInterrupt, not a SinkError; sink rows + e.trace rows are every event."""

    class SlowSink:
        def __init__(self) -> None:
            self.chunks: list[np.ndarray] = []
            self.closed_with: kvmtrace.Trace | None = None

        def write(self, chunk: Any) -> None:
            time.sleep(0.05)  # Python code running when the signal arrives
            self.chunks.append(np.array(chunk.seq, copy=True))

        def close(self, trace: kvmtrace.Trace) -> None:
            self.closed_with = trace

    sink = SlowSink()
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        with sigint_after(0.4), pytest.raises(BaseException) as info:
            m.trace(GuestDebug(single_step=True), timeout=60, sink=sink, sink_rows=1000)
        e = info.value
        t = e.trace  # type: ignore[attr-defined]
        streamed = np.concatenate([*sink.chunks, np.array(t.seq)]) if sink.chunks else np.array(t.seq)
        assert np.array_equal(streamed, np.arange(len(streamed), dtype=np.uint64)), "rows lost or repeated"
        assert len(streamed) == t.event_count
        assert sink.closed_with is t
        assert isinstance(e, KeyboardInterrupt), f"Ctrl-C became {type(e).__name__}: {e}"
        assert t.stop_reason == StopReason.INTERRUPTED


@pytest.mark.requires_kvm
def test_keyboard_interrupt_from_a_handler_keeps_the_trace() -> None:
    with Machine(mode="long") as m:
        m.load_asm("nop\nout %al, $0x80\nhlt\n")

        def handler(port: int, data: bytes | None, size: int, vcpu: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt) as info:
            m.trace(GuestDebug(single_step=True), io_handler=handler, timeout=5)
        assert check_columns(info.value.trace) == 1  # type: ignore[attr-defined]


# Sinks ------------------------------------------------------------------------------


class ListSink:
    """A sink object that keeps the seq/pc of each chunk; fails on write ``fail_at``."""

    def __init__(self, fail_at: int | None = None, exc: BaseException | None = None) -> None:
        self.seq: list[np.ndarray] = []
        self.pc: list[np.ndarray] = []
        self.writes = 0
        self.fail_at, self.exc = fail_at, exc
        self.closed_with: kvmtrace.Trace | None = None

    def write(self, chunk: Any) -> None:
        self.writes += 1
        if self.fail_at is not None and self.writes >= self.fail_at:
            assert self.exc is not None
            raise self.exc
        self.seq.append(np.array(chunk.seq, copy=True))
        self.pc.append(np.array(chunk.pc, copy=True))

    def close(self, trace: kvmtrace.Trace) -> None:
        self.closed_with = trace


@pytest.mark.requires_kvm
def test_failing_sink_object_raises_sink_error_and_keeps_rows() -> None:
    """A sink whose write fails (disk full): SinkError naming the cause; the rows
    it took plus e.trace are every event, in order."""
    n_total = 50_000
    ref = reference_pcs(SPIN_LOOP, n_total)
    sink = ListSink(fail_at=3, exc=OSError(errno.ENOSPC, "No space left on device"))
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        with pytest.raises(SinkError) as info:
            m.trace(GuestDebug(single_step=True), max_events=n_total, sink=sink, sink_rows=1000, timeout=30)
        e = info.value
        assert isinstance(e, KvmTraceError)
        assert "No space left on device" in str(e), str(e)
        assert isinstance(e.__cause__, OSError)
        t = e.trace  # type: ignore[attr-defined]
        assert m.last_trace is t and t.stop_reason == StopReason.SINK_ERROR
        seq = np.concatenate([*sink.seq, np.array(t.seq)])
        pcs = np.concatenate([*sink.pc, np.array(t.pc)])
        assert len(seq) == t.event_count
        assert np.array_equal(seq, np.arange(len(seq), dtype=np.uint64)), "rows lost or repeated"
        assert np.array_equal(pcs, ref[: len(pcs)])
        assert len(sink.seq) == 2 and len(t) >= 1000
        # The Machine carries on: the next trace continues the guest.
        t2 = m.trace(GuestDebug(single_step=True), max_events=5)
        assert int(t2.pc[0]) == successor_map(ref)[int(pcs[-1])]


def _export() -> Any:
    return pytest.importorskip("kvmtrace.export", reason="kvmtrace.export (ParquetSink, read_trace) not written yet")


SINK_CHILD = textwrap.dedent("""
    import sys
    import kvmtrace
    from kvmtrace import GuestDebug, Machine
    from kvmtrace.export import ParquetSink

    path, rows = sys.argv[1], int(sys.argv[2])
    SRC = sys.stdin.read()

    class Acking:
        # Reports each batch the Parquet sink has finished writing.
        def __init__(self, inner):
            self.inner, self.done = inner, 0
        def write(self, chunk):
            self.inner.write(chunk)
            self.done += len(chunk)
            print(self.done, flush=True)
        def close(self, trace):
            self.inner.close(trace)

    m = Machine(mode="long")
    m.load_asm(SRC)
    dbg = GuestDebug(single_step=True)
    m.trace(dbg, sink=Acking(ParquetSink(path, machine=m, debug=dbg)), sink_rows=rows, timeout=120)
    print("FINISHED", flush=True)
""")


@pytest.mark.requires_kvm
def test_sigkill_leaves_every_completed_batch_readable(tmp_path: Path) -> None:
    """A streaming trace whose process is killed with SIGKILL: read_trace returns
    every batch the sink had finished, gap-free from seq 0, the guest's real pcs."""
    export = _export()
    path, rows = tmp_path / "killed", 5000
    errlog = tmp_path / "child.stderr"
    acked = 0
    with open(errlog, "w") as err, subprocess.Popen(
        [sys.executable, "-c", SINK_CHILD, str(path), str(rows)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=err, text=True, cwd=REPO,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(SPIN_LOOP)
        proc.stdin.close()
        try:
            deadline = time.monotonic() + 60
            while acked < 4 * rows:
                ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
                assert ready, "the sink did not finish 4 batches within 60 s"
                line = proc.stdout.readline()
                assert line, f"the child ended early: {errlog.read_text()[-2000:]}"
                acked = int(line)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    t = export.read_trace(path)
    n = len(t)
    print(f"\nSIGKILL after {acked} rows in finished batches of {rows}: {n} rows readable")
    assert n >= acked, f"{acked} rows were written by finished batches, read_trace returns {n}"
    assert np.array_equal(np.asarray(t.seq), np.arange(n, dtype=np.uint64))
    assert np.array_equal(np.asarray(t.pc), reference_pcs(SPIN_LOOP, n))


@pytest.mark.requires_kvm
def test_unwritable_sink_path_is_a_clear_sink_error(tmp_path: Path) -> None:
    _export()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        for bad in [blocker / "trace", Path("/proc/kvmtrace-cannot-write-here")]:
            with pytest.raises(SinkError) as info:
                m.trace(GuestDebug(single_step=True), max_events=10_000, sink=bad, sink_rows=1000)
            assert str(bad) in str(info.value) or bad.name in str(info.value), str(info.value)
        # The Machine still works, nothing ran half-way.
        t = m.trace(GuestDebug(single_step=True), max_events=5)
        assert len(t) == 5


def _check_rows_kept(path: Path, export: Any, mem_seq: Any, mem_pc: Any, n_total: int) -> None:
    """Every event 0..n_total-1 is in a readable part on disk or in memory (e.trace)."""
    # Completed parts must read back; a directory with no part at all holds nothing.
    parts = list(path.glob("*.parquet")) if path.is_dir() else []
    on_disk = export.read_trace(path) if parts else None
    disk_seq = np.asarray(on_disk.seq) if on_disk is not None else np.zeros(0, np.uint64)
    disk_pc = np.asarray(on_disk.pc) if on_disk is not None else np.zeros(0, np.uint64)
    seq = np.concatenate([disk_seq, np.asarray(mem_seq, dtype=np.uint64)])
    pcs = np.concatenate([disk_pc, np.asarray(mem_pc, dtype=np.uint64)])
    order = np.argsort(seq, kind="stable")
    seq, pcs = seq[order], pcs[order]
    assert set(seq.tolist()) == set(range(n_total)), "events lost between disk and memory"
    ref = reference_pcs(SPIN_LOOP, n_total)
    assert np.array_equal(pcs, ref[seq.astype(np.int64)]), "rows on disk or in memory are wrong"


@pytest.mark.requires_kvm
def test_disk_full_while_streaming_tmpfs(tmp_path: Path) -> None:
    """A 1 MiB tmpfs fills up while streaming: SinkError saying so; every event is
    on disk (readable) or in e.trace."""
    export = _export()
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        with Machine(mode="long") as m:
            m.load_asm(SPIN_LOOP)
            with pytest.raises(BaseException) as info:
                m.trace(GuestDebug(single_step=True), max_events=2_000_000, sink=mnt / "trace", sink_rows=20_000,
                        registers=("rax", "rbx", "rcx", "rdx"), timeout=120)
            e = info.value
            assert isinstance(e, SinkError), f"{type(e).__name__}: {e}"
            assert "No space left on device" in str(e), str(e)
            t = e.trace  # type: ignore[attr-defined]
            _check_rows_kept(mnt / "trace", export, t.seq, t.pc, t.event_count)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.requires_kvm
def test_file_size_limit_while_streaming(tmp_path: Path) -> None:
    """RLIMIT_FSIZE (works without root) makes a part write fail with EFBIG: a
    SinkError saying so, every event on disk or in e.trace. (In a child process,
    so the limit does not reach pytest.)"""
    _export()
    path = tmp_path / "trace"
    code = textwrap.dedent("""
        import json, resource, signal, sys
        import numpy as np
        import kvmtrace
        from kvmtrace import GuestDebug, Machine
        path, src = sys.argv[1], sys.stdin.read()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
        out = {}
        with Machine(mode="long") as m:
            m.load_asm(src)
            try:
                t = m.trace(GuestDebug(single_step=True), max_events=400_000, sink=path, sink_rows=20_000,
                            registers=("rax", "rbx"), timeout=120)
                out["result"] = "returned"
            except BaseException as e:
                out["result"] = type(e).__name__
                out["message"] = str(e)
                t = getattr(e, "trace", None)
            if t is not None:
                out["event_count"] = t.event_count
                out["seq"] = np.asarray(t.seq).tolist()
                out["pc"] = np.asarray(t.pc).tolist()
        print(json.dumps(out))
    """)
    r = run_python(code, str(path), input=SPIN_LOOP, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["result"] == "SinkError", (out["result"], out.get("message"))
    assert re.search(r"File too large|EFBIG|size limit", out["message"]), out["message"]
    _check_rows_kept(path, _export(), out["seq"], out["pc"], out["event_count"])


@pytest.mark.requires_kvm
def test_ctrl_c_during_parquet_streaming_leaves_a_valid_trace(tmp_path: Path) -> None:
    """SIGINT while streaming to Parquet: KeyboardInterrupt; read_trace returns
    every event recorded up to the interrupt (the sink is closed with the tail)."""
    export = _export()
    path = tmp_path / "interrupted"
    with Machine(mode="long") as m:
        m.load_asm(SPIN_LOOP)
        with sigint_after(0.6), pytest.raises(KeyboardInterrupt) as info:
            m.trace(GuestDebug(single_step=True), timeout=60, sink=path, sink_rows=10_000)
        e = info.value
        t = e.trace  # type: ignore[attr-defined]
        assert t.stop_reason == StopReason.INTERRUPTED and m.last_trace is t
        n = t.event_count
        assert n > 10_000
    stored = export.read_trace(path)
    assert len(stored) == n, f"{n} events recorded, {len(stored)} stored"
    assert np.array_equal(np.asarray(stored.seq), np.arange(n, dtype=np.uint64))
    assert np.array_equal(np.asarray(stored.pc), reference_pcs(SPIN_LOOP, n))


# Resources --------------------------------------------------------------------------


SOAK_CYCLES = int(os.environ.get("KVMTRACE_SOAK_CYCLES", "10000"))


@pytest.mark.slow
@pytest.mark.requires_kvm
@pytest.mark.timeout(1800)
def test_soak_create_trace_close_leaks_nothing() -> None:
    """10,000 create/trace/close cycles (KVMTRACE_SOAK_CYCLES): no fd, thread or
    memory growth (RSS < 10 MB)."""
    code = kvmtrace.assemble(SPIN_LOOP, "long")
    dbg = GuestDebug(single_step=True)

    def cycle() -> None:
        with Machine(memory_size=0x20000, mode="long") as m:
            m.load_program(code)
            t = m.trace(dbg, max_events=10)
            assert len(t) == 10

    for _ in range(100):  # warm-up: allocator pools, lazy imports
        cycle()
    gc.collect()
    fds0, tasks0, rss0 = fd_count(), task_count(), rss_bytes()
    start = time.monotonic()
    for _ in range(SOAK_CYCLES):
        cycle()
    elapsed = time.monotonic() - start
    gc.collect()
    fds1, tasks1, rss1 = fd_count(), task_count(), rss_bytes()
    print(f"\n{SOAK_CYCLES} cycles in {elapsed:.1f} s ({elapsed / SOAK_CYCLES * 1e3:.2f} ms each); "
          f"fds {fds0}->{fds1}, threads {tasks0}->{tasks1}, RSS {rss0 / 2**20:.1f}->{rss1 / 2**20:.1f} MiB")
    assert fds1 <= fds0
    assert tasks1 <= tasks0
    assert rss1 - rss0 < 10_000_000


@pytest.mark.slow
@pytest.mark.requires_kvm
@pytest.mark.timeout(900)
def test_soak_failure_paths_leak_nothing() -> None:
    """The failure paths, repeated: faults, timeouts, handler and sink errors,
    Machines dropped without close(), bad arguments: no fd/thread/RSS growth."""
    cycles = max(SOAK_CYCLES // 10, 50)
    ud2 = kvmtrace.assemble("nop\nud2\n", "long")
    spin = kvmtrace.assemble("spin: jmp spin\n", "long")
    io = kvmtrace.assemble("nop\nout %al, $0x80\nhlt\n", "long")
    loop = kvmtrace.assemble(SPIN_LOOP, "long")

    def boom(*_: Any) -> None:
        raise ValueError("handler failed")

    def one(i: int) -> None:
        kind = i % 6
        if kind == 5:  # dropped without close: garbage collection frees it
            m = Machine(memory_size=0x20000, mode="long")
            m.load_program(loop)
            m.trace(GuestDebug(single_step=True), max_events=5)
            del m
            return
        with Machine(memory_size=0x20000, mode="long") as m:
            if kind == 0:
                m.load_program(ud2)
                with pytest.raises(GuestFaultError):
                    m.trace(GuestDebug(single_step=True), max_events=10)
            elif kind == 1:
                m.load_program(spin)
                assert m.trace(GuestDebug(), timeout=0.001).stop_reason == StopReason.TIMEOUT
            elif kind == 2:
                m.load_program(io)
                with pytest.raises(ValueError, match="handler failed"):
                    m.trace(GuestDebug(single_step=True), io_handler=boom)
            elif kind == 3:
                m.load_program(loop)
                with pytest.raises(SinkError):
                    m.trace(GuestDebug(single_step=True), max_events=30, sink=ListSink(1, OSError(errno.EIO, "EIO")),
                            sink_rows=10)
            else:
                with pytest.raises(InvalidConfigError):
                    m.trace(GuestDebug(single_step=True), max_events=0)
                with pytest.raises(GuestMemoryError):
                    m.read(0x20000, 1)

    for i in range(60):
        one(i)
    gc.collect()
    fds0, tasks0, rss0 = fd_count(), task_count(), rss_bytes()
    start = time.monotonic()
    for i in range(cycles):
        one(i)
    gc.collect()
    elapsed = time.monotonic() - start
    fds1, tasks1, rss1 = fd_count(), task_count(), rss_bytes()
    print(f"\n{cycles} failure cycles in {elapsed:.1f} s; fds {fds0}->{fds1}, threads {tasks0}->{tasks1}, "
          f"RSS {rss0 / 2**20:.1f}->{rss1 / 2**20:.1f} MiB")
    assert fds1 <= fds0 and tasks1 <= tasks0
    assert rss1 - rss0 < 10_000_000
