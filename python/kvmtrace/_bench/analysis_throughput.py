"""Analysis throughput: ``kvmtrace.analyze`` on synthetic, architecturally clean
single-step traces (no KVM needed)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import kvmtrace
from kvmtrace._bench.dense import step_loop_pcs
from kvmtrace._bench.guests import LOAD_ADDR, STEP_LOOP
from kvmtrace._bench.measure import Measurement
from kvmtrace._core import VECTOR_DB, Dr6

WIDE_PCS = 30_000  # distinct instructions of the wide synthetic analysis trace


def wide_loop(m: int) -> bytes:
    """Real-mode loop of ``m`` distinct instructions: ``m`` x ``inc %ax`` then ``jmp`` back (rel16)."""
    if not 1 <= m <= 0xF000 - LOAD_ADDR // 2:
        raise ValueError(f"m must be in [1, {0xF000 - LOAD_ADDR // 2}]")
    disp = (-(m + 3)) & 0xFFFF
    return b"\x40" * m + b"\xe9" + disp.to_bytes(2, "little")


def synthetic_step_trace(n: int, distinct: int | None = None) -> Any:
    """An architecturally clean single-step trace of ``n`` events (``kvmtrace.Trace.from_columns``).

    ``distinct=None``: STEP_LOOP (4 distinct pcs); otherwise :func:`wide_loop`
    with ``distinct`` instructions, so the decoding rules see that many pcs.
    """
    debug = kvmtrace.GuestDebug(single_step=True)
    seq = np.arange(n, dtype=np.uint64)
    if distinct is None:
        pc, code = step_loop_pcs(seq), STEP_LOOP
    else:
        code = wide_loop(distinct)
        pc = np.uint64(LOAD_ADDR) + (seq + np.uint64(1)) % np.uint64(distinct + 1)
    cols = {
        "seq": seq,
        "vcpu": np.zeros(n, dtype=np.uint16),
        "time_ns": seq * np.uint64(8000),
        "pc": pc,
        "dr6": np.full(n, Dr6.CLEAN | Dr6.BS, dtype=np.uint64),
        "dr7": np.full(n, debug.dr7, dtype=np.uint64),  # the programmed DR7 (bit 10 set)
        "exception": np.full(n, VECTOR_DB, dtype=np.uint8),
    }
    return kvmtrace.Trace.from_columns(
        cols, mode="real", debug=debug, code_regions=[(LOAD_ADDR, code)],
        stop_reason="max_events", event_count=n,
    )


def analysis_missing() -> str | None:
    try:
        from kvmtrace.analysis import analyze  # noqa: F401
    except ImportError as e:
        return f"kvmtrace.analysis is not importable ({e})"
    return None


def analysis_throughput(trace: Any) -> Measurement:
    """Time ``kvmtrace.analyze(trace)`` (all rules) on a trace."""
    t0 = time.perf_counter()
    report = kvmtrace.analyze(trace)
    seconds = time.perf_counter() - t0
    failed = [getattr(r, "id", str(r)) for r in report.failed]
    statuses = {getattr(r, "id", "?"): getattr(r, "status", "?") for r in report.rules}
    return Measurement("kvmtrace.analyze", len(trace), seconds,
                       {"ok": bool(report.ok), "failed_rules": failed, "rules": statuses})
