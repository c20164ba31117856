"""Dense single-step contenders on STEP_LOOP and the checks that their rows are right.

* **C**: ``kvm_step.c`` (:mod:`.cbaseline`), a bare ``KVM_RUN`` loop;
* **kvmtrace**: ``Machine.trace(GuestDebug(single_step=True), max_events=N)`` from
  Python, timed by the engine (``Trace.elapsed_s``: thread start to join);
* **pure Python**: the same ioctl loop with ``fcntl.ioctl`` + ctypes (:mod:`.pyloop`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import kvmtrace
from kvmtrace._bench import cbaseline
from kvmtrace._bench.guests import LOAD_ADDR, MEMORY_SIZE, STEP_LOOP, STEP_LOOP_INSN_OFFSETS
from kvmtrace._bench.measure import BenchCheckError, Measurement
from kvmtrace._bench.pyloop import run_pyloop
from kvmtrace._core import VECTOR_DB, Dr6

TARGET_RATIO = 0.97
"""kvmtrace's single-step events/s must be at least this fraction of the C loop's."""

REGS = ("rip", "rsp", "rax")
"""The registers of the register-capturing runs (C: ``--regs``)."""

_STEP_PCS = np.array([LOAD_ADDR + o for o in STEP_LOOP_INSN_OFFSETS], dtype=np.uint64)


def step_loop_pcs(seq: np.ndarray | int) -> np.ndarray:
    """Architectural pc of STEP_LOOP single-step events ``seq`` (or ``range(seq)``).

    A single-step #DB is a trap: event *i* reports the instruction after the
    *i*-th one, so the sequence is 0x8001, 0x8003, 0x8004, 0x8000, 0x8001, ...
    """
    if isinstance(seq, (int, np.integer)):
        seq = np.arange(int(seq), dtype=np.uint64)
    k = np.uint64(len(_STEP_PCS))
    return _STEP_PCS[((np.asarray(seq, dtype=np.uint64) + np.uint64(1)) % k).astype(np.intp)]


def step_loop_checksum(n: int) -> int:
    """XOR of the first ``n`` STEP_LOOP pcs (what the C and Python loops report)."""
    return int(np.bitwise_xor.reduce(step_loop_pcs(n))) if n else 0


def check_step_loop(pc: Any, dr6: Any, exception: Any, seq: Any = None) -> None:
    """Raise BenchCheckError unless the rows are STEP_LOOP's single-step events."""
    pc = np.asarray(pc, dtype=np.uint64)
    seq = np.arange(len(pc), dtype=np.uint64) if seq is None else np.asarray(seq, dtype=np.uint64)
    expected = step_loop_pcs(seq)
    bad = np.flatnonzero(pc != expected)
    if bad.size:
        i = int(bad[0])
        raise BenchCheckError(
            f"pc mismatch at event seq={int(seq[i])}: expected {int(expected[i]):#x}, observed {int(pc[i]):#x}"
        )
    if not np.all(np.asarray(dr6, dtype=np.uint64) & np.uint64(Dr6.BS)):
        raise BenchCheckError("DR6.BS is not set on every single-step exit")
    if not np.all(np.asarray(exception) == VECTOR_DB):
        raise BenchCheckError("an exit of the single-step loop is not vector 1 (#DB)")


def _check_regs(trace: Any) -> None:
    regs = trace.registers
    seq = np.asarray(trace.seq, dtype=np.uint64)
    if not np.array_equal(regs["rip"], trace.pc):  # cs.base == 0: rip == linear pc
        raise BenchCheckError("captured rip differs from the exit pc")
    # `inc %ax` is the first instruction of each 4-instruction iteration (16-bit: wraps).
    expected_rax = (seq // np.uint64(4) + np.uint64(1)) & np.uint64(0xFFFF)
    if not np.array_equal(regs["rax"], expected_rax):
        i = int(np.flatnonzero(regs["rax"] != expected_rax)[0])
        raise BenchCheckError(f"captured rax at seq={int(seq[i])} is {int(regs['rax'][i])}, expected {int(expected_rax[i])}")


# ---------------------------------------------------------------------------
# dense single-step contenders
# ---------------------------------------------------------------------------
def kvmtrace_step_loop(
    events: int,
    *,
    registers: Sequence[str] = (),
    sink: Any = None,
    sink_rows: int | None = None,
    check: bool = True,
    name: str = "kvmtrace",
    keep_trace: bool = False,
) -> Measurement:
    """Single-step STEP_LOOP for ``events`` exits with ``Machine.trace`` (from Python)."""
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(STEP_LOOP, LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        t = m.trace(
            kvmtrace.GuestDebug(single_step=True),
            max_events=events,
            registers=tuple(registers),
            sink=sink,
            sink_rows=sink_rows,
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    n = t.event_count
    # Before the check below: reading `t.seq` materialises the derived column (8 B/event).
    memory_bytes = t.memory_bytes
    if t.stop_reason != kvmtrace.StopReason.MAX_EVENTS or n != events:
        raise BenchCheckError(f"{name}: expected {events} events and stop max_events, got {n} and {t.stop_reason}")
    if check:
        # With a sink only the unflushed tail is in memory: check it by its seq.
        check_step_loop(t.pc, t.dr6, t.exception, t.seq)
        if registers:
            _check_regs(t)
    meas = Measurement(
        name,
        n,
        t.elapsed_s,
        {"wall_s": wall, "memory_bytes": memory_bytes, "rows_in_memory": len(t), "exits": t.exits,
         "page_faults": t.page_faults},
        # The whole process (the vCPU thread, the calling thread, any sink work):
        # conservative against the C loop's single thread.
        cpu_seconds=cpu,
        user_seconds=t.cpu_user_s,
    )
    if keep_trace:
        meas.extra["trace"] = t
    return meas


def c_step_loop(binary: str | os.PathLike[str], events: int, *, regs: bool = False, name: str = "C") -> Measurement:
    """The C baseline on STEP_LOOP (its loop time, from CLOCK_MONOTONIC inside the program)."""
    r = cbaseline.run_c(binary, STEP_LOOP, events, regs=regs)
    if r["events"] != events or r["stop"] != "limit" or r["checksum"] != step_loop_checksum(events):
        raise BenchCheckError(f"{name}: unexpected result {r} (expected {events} events, checksum {step_loop_checksum(events)})")
    return Measurement(name, r["events"], r["seconds"], {"stop": r["stop"]}, cpu_seconds=r.get("cpu_seconds"),
                       user_seconds=r.get("user_seconds"))


def py_step_loop(events: int, *, regs: bool = False, name: str = "pure Python") -> Measurement:
    """The pure-Python ioctl loop on STEP_LOOP."""
    r = run_pyloop(STEP_LOOP, events, regs=regs)
    if r["events"] != events or r["stop"] != "limit" or r["checksum"] != step_loop_checksum(events):
        raise BenchCheckError(f"{name}: unexpected result {r}")
    return Measurement(name, r["events"], r["seconds"], {"stop": r["stop"]}, cpu_seconds=r.get("cpu_seconds"))
