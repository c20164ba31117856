"""The KVM side of a diff: run a program single-stepped on a fresh Machine and keep
everything the comparison needs (initial image and registers, per-step registers
from KVM's sync regs, how the run stopped, the device writes, the final memory)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import kvmtrace._core as _core
from kvmtrace.machine import Machine
from kvmtrace.oracle.devices import Devices, WriteByte
from kvmtrace.oracle.state import REGISTERS, State
from kvmtrace.program import Program


@dataclass
class KvmRun:
    """What KVM did with a program: row i is the register state after step i (a trap)."""

    mode: str
    memory_size: int
    registers: dict[str, int]  # every register before the first instruction (m.registers())
    layout: dict[str, tuple[int, int]]
    image: bytes  # guest memory before the first instruction
    rows: list[State]
    stop: str  # a StopReason value
    stop_detail: dict[str, Any] = field(default_factory=dict)
    final: State | None = None  # registers when the run stopped (KVM leaves rip at a failing instruction)
    writes: list[WriteByte] = field(default_factory=list)
    console: bytes = b""
    final_memory: bytes | None = None
    max_steps: int | None = None
    elapsed_s: float = 0.0

    @property
    def initial(self) -> State:
        return tuple(self.registers[n] for n in REGISTERS)

    @property
    def exit_code(self) -> int | None:
        return self.stop_detail.get("exit_code") if self.stop == _core.StopReason.EXIT_PORT else None

    def replace_rows(self, rows: list[State], **changes: Any) -> KvmRun:
        """A copy with other rows (and fields): synthetic traces for testing the comparison."""
        d = dict(self.__dict__, rows=list(rows), **changes)
        return KvmRun(**d)


def run_kvm(program: Program, mode: str, *, memory_size: int, max_steps: int, timeout: float | None = None) -> KvmRun:
    """Single-step ``program`` on a fresh Machine with every general register captured."""
    devices = Devices()
    with Machine(memory_size=memory_size, mode=mode) as m:
        m.load_program(program)
        registers = m.registers()
        image = m.read(0, memory_size)
        t0 = time.perf_counter()
        trace = m.trace(_core.GuestDebug(single_step=True, block_irq=True), registers=REGISTERS,
                        io_handler=devices.io_handler, mmio_handler=devices.mmio_handler,
                        raise_on_fault=False, max_events=max_steps, timeout=timeout)
        elapsed = time.perf_counter() - t0
        columns = [trace.registers[n].tolist() for n in REGISTERS]
        final_regs = m.registers()
        return KvmRun(
            mode=mode, memory_size=memory_size, registers=registers, layout=dict(m.layout), image=image,
            rows=list(zip(*columns)), stop=str(trace.stop_reason), stop_detail=dict(trace.stop_detail),
            final=tuple(final_regs[n] for n in REGISTERS), writes=devices.writes, console=bytes(trace.console),
            final_memory=m.read(0, memory_size), max_steps=max_steps, elapsed_s=elapsed,
        )
