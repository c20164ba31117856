"""``kvmtrace boot``: boot a Linux or Multiboot kernel with the serial console live
on the terminal, break on kernel symbols and single-step windows from there.

Wired into the main app with :func:`register` (``register(app)``). Exit status:
the guest's isa-debug-exit status ``(code << 1) | 1`` as QEMU gives it, 0 for a
HLT, 124 for ``--timeout``, 1 for a guest fault or KVM error (its message on stderr).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import typer

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError, KvmTraceError
from kvmtrace.cli.args import ring_option, window_option
from kvmtrace.machine import Machine

EXIT_TIMEOUT = 124
EXIT_FAULT = 1
_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_memory(text: str) -> int:
    """``512M``, ``1G``, ``65536K`` or a plain number of MiB -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise InvalidConfigError(f"invalid memory: {text!r} is not a size such as 512M or 1G")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def exit_status(trace: object) -> int:
    """The process status for a finished run (QEMU's isa-debug-exit convention)."""
    reason = getattr(trace, "stop_reason", None)
    if reason == "exit_port":
        return _core.qemu_exit_status(int(getattr(trace, "exit_code", 0) or 0))
    if reason == "timeout":
        return EXIT_TIMEOUT
    return 0


def _say(text: str) -> None:
    sys.stderr.write(f"\n[kvmtrace] {text}\n")
    sys.stderr.flush()


class BootSession:
    """One ``kvmtrace boot`` run: the Machine, its program and the time left."""

    def __init__(self, m: Machine, timeout: float | None) -> None:
        self.m = m
        self.deadline = None if timeout is None else time.monotonic() + timeout
        #: Console bytes of each finished trace (for a terminal without a descriptor).
        self.console: list[bytes] = []

    def trace(self, debug: _core.GuestDebug, **kw: object) -> Any:
        try:
            t = self.m.trace(debug, timeout=self.left(), **kw)  # type: ignore[arg-type]
        except KvmTraceError as e:
            partial = getattr(e, "trace", None)
            self.console.append(getattr(partial, "console", b"") or b"")
            raise
        self.console.append(t.console)
        return t

    def left(self) -> float | None:
        return None if self.deadline is None else max(0.001, self.deadline - time.monotonic())

    def break_on(self, symbols: list[str]) -> bool:
        """Run to the first hit of an exec breakpoint on one of ``symbols``; True if hit."""
        dbg = _core.GuestDebug(hw_breakpoints=[_core.HwBreakpoint(self.m._addr(s, "break")) for s in symbols])
        t = self.trace(dbg, max_events=1)
        if t.stop_reason != "max_events":
            _say(f"no breakpoint hit: the run stopped with {t.stop_reason}")
            return False
        pc = int(t.pc[0])
        prog = self.m.program
        _say(f"breakpoint hit at {prog.symbolize(pc) if prog else hex(pc)} ({pc:#x})")
        return True

    def steps(self, n: int, out: Path | None) -> None:
        t = self.trace(_core.GuestDebug(single_step=True), max_events=n, sink=None if out is None else out)
        prog = self.m.program
        funcs: dict[str, int] = {}
        if prog is not None:
            for pc in set(t.pc.tolist()):
                name = prog.symbolize(pc).split("+")[0]
                funcs[name] = funcs.get(name, 0) + 1
        where = f" -> {out}" if out is not None else ""
        _say(f"{len(t)} single steps in {len(funcs)} functions{where}")

    def windows(self, window: str, out: Path | None, ring: int | None) -> int:
        """The rest of the boot with single-step windows (``--window``), streamed to ``out``
        (or, with ``--ring``, kept as a ring written to ``out`` only on a fault)."""
        from kvmtrace.cli.args import parse_window

        w = parse_window(window, self.m.program)
        kw: dict[str, Any] = {"window": w}
        if ring is not None:
            kw.update(ring=ring, ring_sink=out)
        elif out is not None:
            kw["sink"] = out
        t = self.trace(_core.GuestDebug(), **kw)
        where = f" -> {out}" if out is not None and ring is None else ""
        _say(f"{t.windows} window(s) at {w.start:#x}, {t.event_count} events{where}; stopped: {t.stop_reason}")
        return exit_status(t)

    def run(self, ring: int | None = None, out: Path | None = None) -> int:
        if ring is not None:
            # The flight recorder over the whole rest of the boot (single-stepped).
            t = self.trace(_core.GuestDebug(single_step=True), ring=ring, ring_sink=out)
            faulted = str(t.stop_reason) in _core.FAULT_STOP_REASONS
            where = "" if out is None else f", written to {out}" if faulted else f", no fault: {out} not written"
            _say(f"kept the last {len(t)} of {t.event_count} steps{where}; stopped: {t.stop_reason}")
            return exit_status(t)
        t = self.trace(_core.GuestDebug())
        _say(f"stopped: {t.stop_reason}" + (f" (exit code {t.exit_code:#x})" if t.stop_reason == "exit_port" else ""))
        return exit_status(t)


def boot(
    kernel: Path = typer.Argument(..., exists=True, dir_okay=False, help="bzImage, vmlinux or Multiboot kernel."),
    multiboot: bool = typer.Option(False, "--multiboot", help="KERNEL is a Multiboot v1 kernel (e.g. kvm-unit-tests' x86/*.flat)."),
    initrd: Path | None = typer.Option(None, "--initrd", exists=True, dir_okay=False, help="Linux initrd/initramfs."),
    cmdline: str | None = typer.Option(None, "--cmdline", help="Kernel command line (default: kvmtrace.boot.default_cmdline)."),
    memory: str = typer.Option("512M", "--memory", help="Guest memory: 512M, 1G, ..."),
    breaks: list[str] | None = typer.Option(None, "--break", "-b", metavar="SYM", help="Exec breakpoint on a kernel symbol (up to 4)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Single-step N instructions (from the first breakpoint hit, else from the entry)."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR.parquet", help="Stream the --steps window to a Parquet dataset."),
    timeout: float | None = typer.Option(None, "--timeout", "-t", min=0.0, help="Stop the whole run after S seconds (exit status 124)."),
    irqchip: bool | None = typer.Option(None, "--irqchip/--no-irqchip", help="In-kernel LAPIC/IOAPIC/PIC/PIT (default: on for --multiboot)."),
    hide: list[str] | None = typer.Option(None, "--hide", metavar="FEATURE", help="Hide a CPUID feature (e.g. cx16, xsave)."),
    system_map: Path | None = typer.Option(None, "--system-map", exists=True, dir_okay=False, help="System.map for a Linux kernel's symbols."),
    vcpus: int = typer.Option(1, "--vcpus", min=1, help="Number of vCPUs (more than one needs the irqchip)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not copy the console to the terminal."),
    window: str | None = window_option("--out streams the windows."),
    ring: int | None = ring_option("The ring holds the windows' rows, else every step of the boot."),
) -> None:
    """Boot a kernel and trace it: the serial console is live on the terminal."""
    try:
        status = _boot(kernel, multiboot, initrd, cmdline, parse_memory(memory), breaks or [], steps, out,
                       timeout, multiboot if irqchip is None else irqchip, hide or [], system_map, vcpus, quiet,
                       window, ring)
    except KvmTraceError as e:
        _say(f"{type(e).__name__}: {e}")
        raise typer.Exit(EXIT_FAULT) from None
    raise typer.Exit(status)


def _echo_to_stdout(m: Machine) -> bool:
    """Copy the console to the terminal as it is written (False: stdout has no descriptor)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    sys.stdout.flush()
    m.echo_console(fd)
    return True


def _boot(kernel: Path, multiboot: bool, initrd: Path | None, cmdline: str | None, memory: int,
          breaks: list[str], steps: int | None, out: Path | None, timeout: float | None, irqchip: bool,
          hide: list[str], system_map: Path | None, vcpus: int, quiet: bool, window: str | None = None,
          ring: int | None = None) -> int:
    if len(breaks) > 4:
        raise InvalidConfigError(f"invalid break: at most 4 hardware breakpoints, got {len(breaks)}")
    with Machine(memory_size=memory, mode="long", vcpus=vcpus, irqchip=irqchip,
                 cpuid_hide=[f.strip() for h in hide for f in h.split(",") if f.strip()]) as m:
        if multiboot:
            m.load_multiboot(kernel, cmdline)
        else:
            m.load_linux(kernel, cmdline, initrd, system_map=system_map)
        live = not quiet and _echo_to_stdout(m)
        session = BootSession(m, timeout)
        try:
            if breaks and not session.break_on(breaks):
                return exit_status(m.last_trace)
            if steps:
                session.steps(steps, None if window or ring else out)
            if window:
                return session.windows(window, out, ring)
            return session.run(ring, out)
        finally:
            if not quiet and not live:
                sys.stdout.write(b"".join(session.console).decode(errors="replace"))


def register(app: typer.Typer) -> None:
    """Add the ``boot`` command to the kvmtrace CLI."""
    app.command("boot")(boot)
