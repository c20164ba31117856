"""Dense single-step of a countdown loop in real and long mode, with BLOCKIRQ, with and
without ``stop_at``: kvmtrace's ``Machine.trace`` against the C loop (``--long``,
``--blockirq``, ``--stop-at``) on the same guest bytes.

The guest is ``mov $N, %ecx; l: dec %ecx; jnz l; done: hlt``: 2N + 1 single-step
exits, the last one at ``done`` (where ``stop_at`` stops); without ``stop_at`` both
loops stop after that many exits. Both report the XOR of every pc, which must agree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

import kvmtrace
from kvmtrace._bench import cbaseline
from kvmtrace._bench.guests import LOAD_ADDR, MEMORY_SIZE
from kvmtrace._bench.measure import BenchCheckError, Measurement

COUNTDOWN = "_start: mov ${n}, %ecx\nl: dec %ecx\n jnz l\ndone: hlt\n"


@lru_cache(maxsize=16)
def countdown(mode: str, events: int) -> tuple[bytes, int]:
    """The countdown guest for ``mode`` giving ``events`` exits (odd: 2N + 1), and ``done``."""
    n = max(1, (events - 1) // 2)
    prog = kvmtrace.assemble(COUNTDOWN.format(n=n), mode, addr=LOAD_ADDR)
    return b"".join(s.data for s in prog.segments), prog.symbol("done")


def countdown_events(events: int) -> int:
    return 2 * max(1, (events - 1) // 2) + 1


def kvmtrace_countdown(mode: str, events: int, *, stop_at: bool) -> Measurement:
    code, done = countdown(mode, events)
    n = countdown_events(events)
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode=mode) as m:
        m.load(code, LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        t = m.trace(kvmtrace.GuestDebug(single_step=True, block_irq=True),
                    stop_at=done if stop_at else None, max_events=None if stop_at else n)
    want = "stop_at" if stop_at else "max_events"
    if len(t) != n or t.stop_reason != want or int(t.pc[-1]) != done:
        raise BenchCheckError(f"kvmtrace {mode}: {len(t)} events ending {t.stop_reason} at {int(t.pc[-1]):#x}, "
                              f"expected {n} ending {want} at {done:#x}")
    return Measurement(f"kvmtrace {mode}{' stop_at' if stop_at else ''}", n, t.elapsed_s,
                       {"checksum": int(np.bitwise_xor.reduce(t.pc)), "bytes_per_event": t.bytes_per_event,
                        "page_faults": t.page_faults},
                       cpu_seconds=t.cpu_user_s + t.cpu_system_s, user_seconds=t.cpu_user_s)


def c_countdown(binary: str | Path, mode: str, events: int, *, stop_at: bool) -> Measurement:
    code, done = countdown(mode, events)
    n = countdown_events(events)
    r = cbaseline.run_c(binary, code, n, mode=mode, block_irq=True, stop_at=done if stop_at else None)
    want = "stop_at" if stop_at else "limit"
    if r["events"] != n or r["stop"] != want:
        raise BenchCheckError(f"C {mode}: {r['events']} events ending {r['stop']}, expected {n} ending {want}")
    return Measurement(f"C {mode}{' stop_at' if stop_at else ''}", n, r["seconds"], {"checksum": r["checksum"]},
                       cpu_seconds=r["cpu_seconds"], user_seconds=r["user_seconds"])


def check_same_pcs(a: Measurement, b: Measurement) -> None:
    if a.extra["checksum"] != b.extra["checksum"]:
        raise BenchCheckError(f"{a.name} and {b.name} saw different pcs (checksums "
                              f"{a.extra['checksum']:#x} and {b.extra['checksum']:#x})")
