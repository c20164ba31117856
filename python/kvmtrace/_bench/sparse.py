"""Sparse contenders: an exec breakpoint on the hot function (kvmtrace) against
Unicorn's ``UC_HOOK_CODE`` on the same guest bytes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import kvmtrace
from kvmtrace._bench.guests import HOT_FUNC_OFFSET, LOAD_ADDR, MEMORY_SIZE, make_hot_guest
from kvmtrace._bench.measure import BenchCheckError, Measurement
from kvmtrace._core import VECTOR_DB, Dr6

HOT_ADDR = LOAD_ADDR + HOT_FUNC_OFFSET
HOT_OUT_OFFSET = 0x10  # `out %al, $0xf4` in the hot guest: where Unicorn stops


def kvmtrace_hot(calls: int, *, breakpoint: bool) -> Measurement:
    """Run HOT_GUEST (``calls`` calls of the hot function) with or without an exec breakpoint on it."""
    if breakpoint:
        debug = kvmtrace.GuestDebug(hw_breakpoints=[kvmtrace.HwBreakpoint(HOT_ADDR, kind="exec")])
    else:
        debug = kvmtrace.GuestDebug()  # KVM_GUESTDBG_ENABLE only: no step, no breakpoint
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(make_hot_guest(calls), LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        t = m.trace(debug)
    name = "kvmtrace hw exec breakpoint" if breakpoint else "kvmtrace, no debugging"
    if t.stop_reason != kvmtrace.StopReason.EXIT_PORT:
        raise BenchCheckError(f"{name}: the hot guest stopped with {t.stop_reason}, expected exit_port")
    hits = len(t)
    if breakpoint:
        if hits != calls:
            raise BenchCheckError(f"{name}: {hits} breakpoint hits, expected {calls}")
        if not (np.all(t.pc == HOT_ADDR) and np.all(t.exception == VECTOR_DB) and np.all(t.dr6 & Dr6.b(0))):
            raise BenchCheckError(f"{name}: a hit is not a #DB with B0 at {HOT_ADDR:#x}")
    elif hits:
        raise BenchCheckError(f"{name}: {hits} events recorded without any debug feature")
    # The KVM_RUN that ends at the exit port is not part of any hit.
    per_hit = (t.ioctls - 1) / calls if breakpoint and calls else None
    return Measurement(name, hits, t.elapsed_s, {"calls": calls, "exits": t.exits, "ioctls": t.ioctls,
                                                 "ioctls_per_hit": per_hit, "rf_resume": m.host["rf_resume"]})


#: Instructions of the hot function (inc, add, xor, ret): a window that steps it whole.
HOT_FUNC_STEPS = 4


def kvmtrace_hot_window(calls: int, steps: int = HOT_FUNC_STEPS) -> Measurement:
    """HOT_GUEST with a window on the hot function: free between calls, ``steps``
    single steps from each call (the trigger hit is each window's first row)."""
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(make_hot_guest(calls), LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        t = m.trace(window=kvmtrace.Window(HOT_ADDR, steps=steps))
    name = f"kvmtrace window ({steps} steps)"
    if t.stop_reason != kvmtrace.StopReason.EXIT_PORT:
        raise BenchCheckError(f"{name}: the hot guest stopped with {t.stop_reason}, expected exit_port")
    if t.windows != calls or len(t) != calls * (steps + 1):
        raise BenchCheckError(f"{name}: {t.windows} windows and {len(t)} rows, expected {calls} and "
                              f"{calls * (steps + 1)}")
    if not np.all(t.pc[:: steps + 1] == HOT_ADDR):
        raise BenchCheckError(f"{name}: a window does not open at {HOT_ADDR:#x}")
    return Measurement(name, len(t), t.elapsed_s, {"calls": calls, "windows": t.windows, "exits": t.exits,
                                                   "ioctls": t.ioctls, "ioctls_per_window": (t.ioctls - 1) / calls})


def unicorn_missing() -> str | None:
    """None if Unicorn can be imported, else why not."""
    try:
        import unicorn  # noqa: F401
    except ImportError as e:
        return f"unicorn is not installed ({e}); pip install unicorn"
    return None


def unicorn_hot(calls: int, *, hook: bool) -> Measurement:
    """Run the same HOT_GUEST bytes in Unicorn (16-bit), optionally with UC_HOOK_CODE on the hot function."""
    # unicorn's __init__ re-exports Uc (its documented entry point) without marking it public,
    # so pyright takes it for a private import of the py.typed package.
    from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_MODE_16, Uc  # pyright: ignore[reportPrivateImportUsage]
    from unicorn.x86_const import UC_X86_REG_ECX, UC_X86_REG_EIP

    mu = Uc(UC_ARCH_X86, UC_MODE_16)
    mu.mem_map(0, MEMORY_SIZE)
    mu.mem_write(LOAD_ADDR, make_hot_guest(calls))
    hits = 0

    def on_code(uc: Any, address: int, size: int, user_data: Any) -> None:
        nonlocal hits
        hits += 1

    if hook:
        # Only the hot function's entry: one callback per call, like one breakpoint hit.
        mu.hook_add(UC_HOOK_CODE, on_code, begin=HOT_ADDR, end=HOT_ADDR)
    t0 = time.perf_counter()
    mu.emu_start(LOAD_ADDR, LOAD_ADDR + HOT_OUT_OFFSET)
    seconds = time.perf_counter() - t0
    name = "Unicorn UC_HOOK_CODE" if hook else "Unicorn, no hook"
    if mu.reg_read(UC_X86_REG_EIP) != LOAD_ADDR + HOT_OUT_OFFSET or mu.reg_read(UC_X86_REG_ECX) != 0:
        raise BenchCheckError(f"{name}: the guest did not finish its {calls} calls")
    if hook and hits != calls:
        raise BenchCheckError(f"{name}: {hits} hook calls, expected {calls}")
    return Measurement(name, hits, seconds, {"calls": calls})
