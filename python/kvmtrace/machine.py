"""Machine: a KVM virtual machine with its memory and vCPUs (thin wrapper over the Rust core)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, cast

import kvmtrace._core as _core
from kvmtrace.columnar.sink import ParquetSink
from kvmtrace.engine import IoHandler, Sink, run_trace
from kvmtrace.boot.linux import KernelProgram, load_linux
from kvmtrace.boot.multiboot import load_multiboot
from kvmtrace.exceptions import GuestMemoryError, InvalidConfigError, ProgramError
from kvmtrace.program import DEFAULT_LOAD_ADDR, Program, assemble, load_elf
from kvmtrace.trace import Trace


class Registers(MutableMapping[str, int]):
    """A vCPU's registers by name: ``vcpu.regs["rax"]``, ``vcpu.regs["cr4"] |= 8``."""

    def __init__(self, machine: Machine, index: int) -> None:
        self._m, self._i = machine, index

    def __getitem__(self, name: str) -> int:
        return self._m._m.get_register(name, self._i)

    def __setitem__(self, name: str, value: int) -> None:
        self._m._m.set_register(name, value, self._i)

    def __delitem__(self, name: str) -> None:
        raise TypeError("registers cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._m._m.registers(self._i))

    def __len__(self) -> int:
        return len(self._m._m.registers(self._i))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v:#x}" for k, v in self._m._m.registers(self._i).items()) + "}"


class Vcpu:
    """One vCPU of a Machine."""

    def __init__(self, machine: Machine, index: int) -> None:
        self.machine, self.index = machine, index
        self.regs = Registers(machine, index)

    def run_once(self) -> _core.Exit:
        """One KVM_RUN (GIL released); returns the exit: reason, exception, pc, dr6, dr7, io/mmio detail."""
        return self.machine._m.run_once(self.index)

    def set_guest_debug(self, debug: _core.GuestDebug | None) -> None:
        """Program KVM_SET_GUEST_DEBUG on this vCPU (None turns debugging off)."""
        self.machine._m.set_guest_debug(debug, self.index)

    def registers(self) -> dict[str, int]:
        return self.machine._m.registers(self.index)

    def reset(self) -> None:
        self.machine._m.reset(self.index)

    def __repr__(self) -> str:
        return f"<Vcpu {self.index} of {self.machine!r}>"


class Machine:
    """A VM: ``Machine(memory_size=16 MiB, mode="real" | "protected" | "long", vcpus=1, irqchip=False)``.

    With ``irqchip=True`` KVM emulates the LAPIC, IOAPIC, PIC and PIT in the kernel:
    the guest can program the LAPIC timer and send IPIs, and HLT waits in the kernel
    for an interrupt (it no longer ends a trace; use ``timeout`` or the exit port).

    A context manager; closing frees the VM and vCPU fds and the guest memory (so
    does garbage collection). ``layout`` gives the guest-physical regions it reserves.
    """

    def __init__(self, memory_size: int = 16 << 20, mode: str = "long", vcpus: int = 1, *,
                 irqchip: bool = False, cpuid_hide: Iterable[str] = (), legacy_ports: bool = False) -> None:
        self._m = _core.Machine(memory_size, mode, vcpus, irqchip)
        self.program: Program | None = None
        self.last_trace: Trace | None = None
        self.hidden_cpu_features: tuple[str, ...] = ()
        if isinstance(cpuid_hide, str):
            cpuid_hide = (cpuid_hide,)
        if cpuid_hide:
            self.hide_cpu_features(*cpuid_hide)
        if legacy_ports:
            self.legacy_ports = True

    # Lifetime ----------------------------------------------------------------
    def close(self) -> None:
        self._m.close()

    @property
    def closed(self) -> bool:
        return self._m.closed

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Facts -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._m.mode

    @property
    def bits(self) -> int:
        return self._m.bits

    @property
    def memory_size(self) -> int:
        return self._m.memory_size

    @property
    def vcpu_count(self) -> int:
        return self._m.vcpu_count

    @property
    def irqchip(self) -> bool:
        """In-kernel LAPIC (at 0xfee00000), IOAPIC, PIC and PIT: ``Machine(irqchip=True)``."""
        return self._m.irqchip

    @property
    def layout(self) -> dict[str, tuple[int, int]]:
        """Reserved regions: name -> (start, size). See the README's memory layout."""
        return self._m.layout

    @property
    def host_caps(self) -> dict[str, Any]:
        return self._m.host_caps

    @property
    def host(self) -> dict[str, Any]:
        """Host behaviour probed once per process: ``rf_resume`` (KVM_RUN honours
        RFLAGS.RF after an instruction breakpoint, so a hit costs one KVM_RUN)."""
        return self._m.host

    @property
    def entry(self) -> int:
        return self._m.entry

    def set_entry(self, addr: int) -> None:
        self._m.set_entry(addr)

    # Memory ------------------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        return self._m.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self._m.write(addr, data)

    def load(self, data: bytes, addr: int = DEFAULT_LOAD_ADDR) -> None:
        """Write code at ``addr`` (remembered as a code region for later decoding)."""
        self._m.load(data, addr)

    def load_program(self, program: Program | bytes, addr: int = DEFAULT_LOAD_ADDR) -> Program:
        """Load a Program (or raw bytes at ``addr``) and point the vCPUs at its entry."""
        if not isinstance(program, Program):
            program = Program.from_bytes(program, addr, mode=self.mode)
        size = self.memory_size
        for seg in program.segments:
            if seg.addr + max(seg.memsz, len(seg.data)) > size:
                raise GuestMemoryError(
                    f"segment {seg.addr:#x}..{seg.addr + seg.memsz:#x} is outside guest memory "
                    f"(0x0..{size:#x}); use a larger memory_size"
                )
        for seg in program.segments:
            self._m.load(seg.data, seg.addr)
            # .bss: zero-fill in bounded pieces (memsz was checked above).
            at, end = seg.addr + len(seg.data), seg.addr + seg.memsz
            while at < end:
                n = min(end - at, 1 << 20)
                self._m.write(at, bytes(n))
                at += n
        self._m.set_entry(program.entry)
        self.program = program
        return program

    def load_asm(self, source: str, addr: int = DEFAULT_LOAD_ADDR) -> Program:
        """Assemble ``source`` for this machine's mode and load it."""
        return self.load_program(assemble(source, self.mode, addr=addr))

    def load_elf(self, path: str | os.PathLike[str]) -> Program:
        """Load a freestanding static ELF executable (segments, entry, symbols)."""
        return self.load_program(load_elf(path, self.mode))

    # Kernels (kvmtrace.boot) -----------------------------------------------------
    def load_linux(self, kernel: str | os.PathLike[str] | bytes, cmdline: str | None = None,
                   initrd: str | os.PathLike[str] | bytes | None = None, *,
                   system_map: str | os.PathLike[str] | None = None) -> KernelProgram:
        """Boot protocol 2.x, 64-bit entry: a bzImage (payload decompressed on the host) or a vmlinux.

        ``cmdline`` defaults to ``kvmtrace.boot.default_cmdline`` for this Machine (serial
        console, early output, no KASLR; ``nolapic noapic`` without an irqchip;
        ``clearcpuid=`` for hidden features). Symbols: ``system_map``, else the ELF symbol
        table, else the image's kallsyms. Turns the legacy ports on.
        """
        prog = load_linux(self, kernel, cmdline, initrd, system_map)
        self.program = prog
        return prog

    def load_multiboot(self, kernel: str | os.PathLike[str], cmdline: str | None = None,
                       modules: Iterable[Any] = ()) -> Program:
        """Multiboot v1: 32-bit entry, paging off, EAX = 0x2BADB002, EBX = the info structure.

        ``modules``: paths, or (path, command line) pairs. Turns the legacy ports on.
        """
        prog = load_multiboot(self, kernel, cmdline, modules)
        self.program = prog
        return prog

    def hide_cpu_features(self, *names: str) -> None:
        """Clear CPUID feature bits (Linux flag names, ``kvmtrace._core.CPU_FEATURES``) before the first run."""
        _core.hide_cpu_features(self._m, list(names))
        self.hidden_cpu_features = tuple(dict.fromkeys(self.hidden_cpu_features + tuple(names)))

    @property
    def cpuid(self) -> list[tuple[int, int, int, int, int, int]]:
        """The vCPUs' CPUID table: (function, index, eax, ebx, ecx, edx) rows."""
        return _core.cpuid_entries(self._m)

    def set_cpuid_entry(self, function: int, index: int, eax: int, ebx: int, ecx: int, edx: int) -> None:
        """Replace (or add) one CPUID entry on every vCPU, before the first run."""
        _core.set_cpuid_entry(self._m, function, index, eax, ebx, ecx, edx)

    @property
    def legacy_ports(self) -> bool:
        """Fixed answers for legacy PC ports (PIC, PIT, CMOS, i8042, PCI, ...) no handler took."""
        return _core.legacy_ports(self._m)

    @legacy_ports.setter
    def legacy_ports(self, on: bool) -> None:
        _core.legacy_ports(self._m, bool(on))

    def echo_console(self, fd: int | None) -> None:
        """Copy console output (COM1 and port 0xE9) to file descriptor ``fd`` live (None: stop)."""
        _core.set_console_echo(self._m, fd)

    def set_idt_handler(self, vector: int, handler: int | str) -> None:
        """Point interrupt ``vector`` at ``handler`` (an address or a program symbol)."""
        self._m.set_idt_handler(vector, self._addr(handler, "handler"))

    # vCPUs -------------------------------------------------------------------
    def vcpu(self, index: int = 0) -> Vcpu:
        if not isinstance(index, int) or not 0 <= index < self.vcpu_count:
            raise InvalidConfigError(f"invalid vcpu: {index!r} is out of range (this Machine has {self.vcpu_count})")
        return Vcpu(self, index)

    @property
    def vcpus(self) -> list[Vcpu]:
        return [Vcpu(self, i) for i in range(self.vcpu_count)]

    @property
    def regs(self) -> Registers:
        """Registers of vCPU 0."""
        return Registers(self, 0)

    def get_register(self, name: str, vcpu: int = 0) -> int:
        return self._m.get_register(name, vcpu)

    def set_register(self, name: str, value: int, vcpu: int = 0) -> None:
        self._m.set_register(name, value, vcpu)

    def registers(self, vcpu: int = 0) -> dict[str, int]:
        return self._m.registers(vcpu)

    def reset(self, vcpu: int | None = None) -> None:
        self._m.reset(vcpu)

    def run_once(self, vcpu: int = 0) -> _core.Exit:
        return self._m.run_once(vcpu)

    # Tracing -----------------------------------------------------------------
    def trace(
        self,
        debug: _core.GuestDebug | None = None,
        *,
        max_events: int | None = None,
        stop_at: int | str | None = None,
        timeout: float | None = None,
        registers: Iterable[str] | None = (),
        io_handler: IoHandler | None = None,
        mmio_handler: IoHandler | None = None,
        sink: str | os.PathLike[str] | Any | None = None,
        sink_rows: int | None = None,
        raise_on_fault: bool = True,
        progress: _core.Progress | None = None,
        window: _core.Window | None = None,
        ring: int | None = None,
        ring_sink: str | os.PathLike[str] | Any | None = None,
    ) -> Trace:
        """Run the KVM_RUN loop natively (GIL released) and record every debug exit.

        Stops at ``max_events`` (per vCPU), a debug exit at ``stop_at`` (address or
        symbol), a HLT exit, a write to port 0xF4, ``timeout`` seconds, Ctrl-C
        (KeyboardInterrupt with ``.trace``), a guest shutdown or KVM internal error
        (GuestFaultError / KvmInternalError with ``.trace``; or a returned trace with
        ``raise_on_fault=False``), or an unhandled port/MMIO access.

        Handlers are called as ``handler(port_or_addr, data_or_None, size, vcpu)``; for
        reads return an int or bytes. ``sink`` streams rows to a Parquet dataset
        directory (or any object with ``write(chunk)`` and ``close(trace)``).
        ``progress`` (a ``kvmtrace._core.Progress``) counts events and exits live, for
        a display refreshed from another thread.

        ``window`` (a :class:`kvmtrace.Window`) runs free and single-steps only from
        each execution of its ``start`` for ``steps`` instructions or ``until`` an
        address; rows get a ``window`` column. ``ring=N`` keeps only the last N events
        per vCPU (``trace.dropped_events`` counts the rest); ``ring_sink`` (a dataset
        path or an object with ``close(trace)``) receives that trace only when the run
        ends with a fault (shutdown, KVM internal error, failed entry).
        """
        if debug is None:
            debug = _core.GuestDebug(single_step=window is None)
        stop = None if stop_at is None else self._addr(stop_at, "stop_at")
        window = self._window(window)
        writer, path = self._sink(sink, debug)
        if isinstance(ring_sink, (str, os.PathLike)):
            ring_sink = _LazyDataset(os.fspath(ring_sink), self, debug)
        try:
            t = run_trace(self._m, debug, max_events=max_events, stop_at=stop, timeout=timeout, registers=registers,
                          io_handler=io_handler, mmio_handler=mmio_handler, sink=writer, sink_rows=sink_rows,
                          raise_on_fault=raise_on_fault, progress=progress, window=window, ring=ring,
                          ring_sink=ring_sink)
        except BaseException as e:
            partial = getattr(e, "trace", None)
            if isinstance(partial, Trace):
                partial.sink_path = path
                self.last_trace = partial
            raise
        t.sink_path = path
        self.last_trace = t
        return t

    def _sink(self, sink: Any, debug: _core.GuestDebug) -> tuple[Sink | None, str | None]:
        """The sink object for ``sink``: a path becomes a ParquetSink dataset (the path shortcut)."""
        if isinstance(sink, (str, os.PathLike)):
            path = os.fspath(sink)
            if isinstance(path, str):
                if not path:
                    raise InvalidConfigError("invalid sink: the path is empty")
                return ParquetSink(path, machine=self, debug=debug), path
        return cast("Sink | None", sink), None  # anything else is checked by the engine

    def _window(self, window: Any) -> _core.Window | None:
        """``window`` with its symbols resolved to addresses."""
        if window is None:
            return None
        if not isinstance(window, _core.Window):
            raise InvalidConfigError(f"invalid window: expected a kvmtrace.Window, got {type(window).__name__}")
        until = window.until
        return window.resolved(self._addr(window.start, "window.start"),
                               None if until is None else self._addr(until, "window.until"))

    def _addr(self, where: int | str, field: str) -> int:
        if isinstance(where, str):
            if self.program is None:
                raise InvalidConfigError(f"invalid {field}: {where!r} is a symbol but no program with symbols is loaded")
            try:
                return self.program.symbol(where)
            except ProgramError as e:
                raise InvalidConfigError(f"invalid {field}: {e}") from None
        return where

    def __repr__(self) -> str:
        return repr(self._m)


class _LazyDataset:
    """A ``ring_sink`` path: the dataset is created only if the run faults."""

    def __init__(self, path: str, machine: Machine, debug: _core.GuestDebug) -> None:
        if not path:
            raise InvalidConfigError("invalid ring_sink: the path is empty")
        self.path, self._machine, self._debug = path, machine, debug

    def close(self, trace: Trace) -> None:
        ParquetSink(self.path, machine=self._machine, debug=self._debug).close(trace)
