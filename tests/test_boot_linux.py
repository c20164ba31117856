"""Booting the Debian cloud kernel (fetched by scripts/fetch-kernel.sh) and its symbols.

One boot serves the tracing checks (module fixture): an exec breakpoint on
start_kernel found from the image's own kallsyms, 20,000 symbolised single steps
from there, then the boot to the early console milestones and a clear, typed stop.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import kvmtrace
from kvmtrace import GuestDebug, HwBreakpoint, Machine, Window, _core
from kvmtrace.boot import find_kallsyms, parse_system_map
from kvmtrace.perfetto import perfetto_events

from kernels import debian_kernel_or_skip, find_system_map

pytestmark = pytest.mark.requires_kvm

#: Small enough that the kernel's memory setup is quick, large enough for it to boot.
MEMORY = 128 << 20
#: The whole boot run's bound: the console milestones take ~60 s on the development host.
BOOT_TIMEOUT = 150.0
STEPS = 20_000


@pytest.fixture(scope="module")
def kernel() -> Path:
    return debian_kernel_or_skip()


@pytest.fixture(scope="module")
def vmlinux(kernel: Path) -> bytes:
    data, fmt, version = _core.extract_vmlinux(kernel.read_bytes())
    assert data[:4] == b"\x7fELF" and fmt in ("gzip", "xz", "lzma", "bzip2", "lz4", "zstd")
    assert version and version[0].isdigit()
    return data


@pytest.fixture(scope="module")
def booted(kernel: Path) -> Any:
    """The whole boot, run once: (program, breakpoint trace, step trace, final trace or error)."""
    with Machine(memory_size=MEMORY, mode="long") as m:
        prog = m.load_linux(kernel)
        start = prog.symbol("start_kernel")
        hit = m.trace(GuestDebug(hw_breakpoints=[HwBreakpoint(start)]), max_events=1, timeout=BOOT_TIMEOUT)
        steps = m.trace(GuestDebug(single_step=True), max_events=STEPS, timeout=BOOT_TIMEOUT)
        console = hit.console + steps.console
        try:
            end: Any = m.trace(GuestDebug(), timeout=BOOT_TIMEOUT)
            console += end.console
        except kvmtrace.KvmTraceError as e:
            end = e
            console += e.trace.console  # type: ignore[attr-defined]
        yield prog, hit, steps, end, console.decode(errors="replace")


def test_kallsyms_from_the_image_itself(kernel: Path, vmlinux: bytes) -> None:
    syms = find_kallsyms(vmlinux)
    by_name = {s.name: s for s in syms}
    assert len(syms) > 50_000
    assert by_name["start_kernel"].type in "Tt" and by_name["start_kernel"].addr >> 32 == 0xFFFF_FFFF
    assert by_name["_text"].addr == 0xFFFF_FFFF_8100_0000  # nokaslr: the linked base
    text = [s.addr for s in syms if s.kind == "func" and s.addr >> 63]
    assert text == sorted(text), "kallsyms lists code in address order"


def test_system_map_source_matches_kallsyms(kernel: Path, vmlinux: bytes, tmp_path: Path) -> None:
    syms = find_kallsyms(vmlinux)
    real = find_system_map()
    if real is not None:  # the -dbg package's System.map, when it was extracted
        ref = {(n, a) for a, _t, n in (line.split()[:3] for line in real.read_text().splitlines())
               for a in [int(a, 16)]}
        ours = {(s.name, s.addr) for s in syms}
        assert len(ours - ref) < len(ours) // 1000, sorted(ours - ref)[:5]
    smap = tmp_path / "System.map"
    smap.write_text("".join(f"{s.addr:016x} {s.type} {s.name}\n" for s in syms))
    with Machine(memory_size=MEMORY) as m:
        prog = m.load_linux(kernel, system_map=smap)
        assert prog.boot["symbols_from"] == "system_map"
        assert prog.symbol("start_kernel") == next(s.addr for s in syms if s.name == "start_kernel")
    with pytest.raises(kvmtrace.ProgramError, match="placeholder"):
        parse_system_map("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")


def test_elf_symbol_table_source(kernel: Path, vmlinux: bytes, tmp_path: Path) -> None:
    if shutil.which("objcopy") is None:
        pytest.fail("binutils' objcopy is needed")
    syms = {s.name: s.addr for s in find_kallsyms(vmlinux)}
    start, text = syms["start_kernel"], syms["_text"]
    plain, with_syms = tmp_path / "vmlinux", tmp_path / "vmlinux.sym"
    plain.write_bytes(vmlinux)
    # Section-relative (objcopy reads a bare value as a signed 64-bit number).
    subprocess.run(["objcopy", f"--add-symbol=start_kernel=.text:{start - text:#x},global,function",
                    str(plain), str(with_syms)], check=True)
    with Machine(memory_size=MEMORY) as m:
        prog = m.load_linux(with_syms)
        assert prog.boot["symbols_from"] == "elf" and prog.boot["format"] == "none"
        assert prog.symbol("start_kernel") == start


def test_breakpoint_on_start_kernel_is_hit_once_there(booted: Any) -> None:
    prog, hit, _steps, _end, _console = booted
    assert hit.stop_reason == "max_events" and len(hit) == 1
    assert hit.pc[0] == prog.symbol("start_kernel") and hit.exception[0] == _core.VECTOR_DB
    assert hit.dr6[0] & _core.Dr6.b(0)
    assert prog.boot["symbols_from"] == "kallsyms"


def test_steps_from_start_kernel_are_symbolised(booted: Any) -> None:
    prog, _hit, steps, _end, _console = booted
    assert len(steps) == STEPS and steps.stop_reason == "max_events"
    names = {prog.symbolize(pc).split("+")[0] for pc in set(steps.pc.tolist())}
    assert "start_kernel" in names and len(names) > 10
    assert all(pc >> 32 == 0xFFFF_FFFF for pc in steps.pc.tolist()), "kernel pcs are the linked virtual ones"
    # A flame chart of start_kernel's first steps: the pc before the first step is
    # start_kernel's entry (where the breakpoint stopped).
    events, _summary = perfetto_events(steps, prog, entry=prog.symbol("start_kernel"))
    slices = [e for e in events if e.get("ph") == "X"]
    assert slices and any(e["name"] == "start_kernel" for e in slices), {e["name"] for e in slices}


def test_console_milestones_and_a_typed_stop(booted: Any) -> None:
    _prog, _hit, _steps, end, console = booted
    for milestone in ("Linux version", "Kernel command line:", "Memory:"):
        assert milestone in console, console[-2000:]
    assert "console=ttyS0" in console
    if isinstance(end, kvmtrace.KvmInternalError) and end.suberror == 1:  # type: ignore[attr-defined]
        # The error names the instruction, where it is and in which function.
        assert end.instruction and end.symbol and end.pc >> 32 == 0xFFFF_FFFF  # type: ignore[attr-defined]
        assert f"`{end.instruction}` at {end.symbol} ({end.pc:#x})" in str(end)  # type: ignore[attr-defined]
    elif isinstance(end, BaseException):
        assert isinstance(end, kvmtrace.KvmTraceError) and str(end)
    else:
        assert end.stop_reason in ("timeout", "hlt", "exit_port", "shutdown"), end.stop_reason


def test_windows_on_a_kernel_function(kernel: Path) -> None:
    """The boot runs free and single-steps 200 instructions from each of the first
    three calls of _printk (found in the kernel's own kallsyms)."""
    from kvmtrace.symbols import hottest

    with Machine(memory_size=MEMORY, mode="long") as m:
        prog = m.load_linux(kernel)
        t = m.trace(window=Window("_printk", steps=200, repeat=3), max_events=3 * 201, timeout=BOOT_TIMEOUT)
    assert t.stop_reason == "max_events" and t.windows == 3, t.stop_detail
    assert t.window is not None and t.window.tolist() == [k for k in range(3) for _ in range(201)]
    starts = t.pc[::201].tolist()
    assert starts == [prog.symbol("_printk")] * 3, "each window opens on the trigger at _printk"
    assert all(pc >> 32 == 0xFFFF_FFFF for pc in t.pc.tolist())
    funcs = {h.symbol for h in hottest(t, prog, 20, window=True, by="symbol")}
    assert "_printk" in funcs and len(funcs) > 2, funcs
