"""Helpers for the oracle tests: synthetic KVM runs, and task functions workers import.

A synthetic KVM run is what an architecturally correct KVM would report, built from
the reference model itself (no /dev/kvm needed); tests then remove, add or change
rows to check that the comparison names each kind of divergence at the right step.
"""

from __future__ import annotations

import os
from typing import Any

from kvmtrace import _core
from kvmtrace.oracle.kvm_side import KvmRun
from kvmtrace.oracle.reference import UnicornReference
from kvmtrace.program import assemble

MEMORY = 256 << 10
CODE = 0x8000


def real_mode_registers() -> dict[str, int]:
    """The registers a real-mode Machine starts with (README: rsp = rip = 0x8000, segments 0)."""
    regs = {n: 0 for n in _core.REGISTER_NAMES}
    regs.update(rsp=0x8000, rip=CODE, rflags=0x2)
    return regs


def reference_for(run: KvmRun) -> UnicornReference:
    return UnicornReference(mode=run.mode, memory_size=run.memory_size, registers=run.registers, layout=run.layout,
                            image=run.image)


def perfect_run(source: str, max_steps: int = 1000) -> KvmRun:
    """The KVM run an architecturally correct host gives for a real-mode ``source``."""
    code = assemble(source, "real").segments[0].data
    image = bytearray(MEMORY)
    image[CODE:CODE + len(code)] = code
    run = KvmRun(mode="real", memory_size=MEMORY, registers=real_mode_registers(), layout={}, image=bytes(image),
                 rows=[], stop="max_events", max_steps=max_steps)
    ref = reference_for(run)
    rows = []
    for _ in range(max_steps):
        st = ref.step()
        if st.event == "exit":
            run.stop, run.stop_detail = "exit_port", dict(st.detail)
            break
        assert st.event is None, st
        rows.append(st.state)
    run.rows = rows
    run.final = ref.read_state()
    run.writes = list(ref.devices.writes)
    run.console = bytes(ref.devices.console)
    run.final_memory = ref.read_memory()
    return run


def run_or_die(spec: dict[str, Any]) -> dict[str, Any]:
    """A campaign task whose worker process dies on program 2 (a crash in the middle of a run)."""
    if spec["index"] == 2:
        os._exit(3)
    from kvmtrace.oracle.tasks import run_program

    return run_program(spec)
