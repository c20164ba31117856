"""Multi-vCPU reliability (issue 6): several vCPUs single-stepping at once.

Every vCPU runs the same loop (tests/data/mv_<mode>.S) on its own stack, with rdi
holding its index. The loop's control flow does not depend on the index, so each
vCPU's pc sequence must be exactly the one a single-vCPU run of the same guest
gives; each row must carry the right vCPU tag (checked through the rdi and rsp
recorded with it), and the merged trace must be one consistent table.

The big cases run 1,000,000 events per vCPU (KVMTRACE_MV_EVENTS overrides it).
On a 2-core nested-KVM host all vCPUs together get ~130-140k single-step exits
per second, so 2 vCPUs x 1M take ~15 s and 4 vCPUs x 1M ~30 s.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import kvmtrace
from kvmtrace import GuestDebug, Machine, StopReason

DATA = Path(__file__).parent / "data"
BIG_EVENTS = int(os.environ.get("KVMTRACE_MV_EVENTS", "1000000"))
SMALL_EVENTS = 20_000
STACK_TOP, STACK_PER_VCPU = 0x8000, 0x1800  # the documented layout

pytestmark = pytest.mark.requires_kvm


def source(mode: str) -> str:
    return (DATA / f"mv_{mode}.S").read_text()


@cache
def reference_pcs(mode: str, n: int) -> np.ndarray:
    """The pc sequence of a single-vCPU run of the guest (n events)."""
    with Machine(mode=mode, vcpus=1) as m:
        m.load_asm(source(mode))
        t = m.trace(GuestDebug(single_step=True), max_events=n)
        assert t.stop_reason == StopReason.MAX_EVENTS, t.stop_detail
        assert len(t) == n
        return np.array(t.pc, copy=True)


def check_multi_vcpu_trace(t: kvmtrace.Trace, nvcpus: int, n: int, mode: str) -> None:
    """Every row tagged right, per-vCPU pcs equal to the single-vCPU reference."""
    assert t.vcpus == nvcpus
    assert t.per_vcpu_stop == ["max_events"] * nvcpus, (t.per_vcpu_stop, t.stop_detail)
    total = nvcpus * n
    assert len(t) == total and t.event_count == total
    cols = t.to_numpy()
    assert all(len(c) == total for c in cols.values()), {k: len(c) for k, c in cols.items()}
    # The merged table: seq is 0..total-1, rows in time order.
    assert np.array_equal(t.seq, np.arange(total, dtype=np.uint64))
    assert bool(np.all(np.diff(t.time_ns.astype(np.int64)) >= 0)), "merged rows are not in time order"
    assert set(np.unique(t.vcpu).tolist()) == set(range(nvcpus))
    ref = reference_pcs(mode, n)
    rdi, rsp = t.registers["rdi"], t.registers["rsp"]
    for i in range(nvcpus):
        mine = t.vcpu == i
        assert int(mine.sum()) == n, f"vCPU {i} has {int(mine.sum())} rows, expected {n}"
        # The tag is right: rdi (the vCPU index, never written by the guest) and the
        # stack pointer (inside this vCPU's own stack) agree with it on every row.
        bad = np.flatnonzero(rdi[mine] != i)
        assert bad.size == 0, f"vCPU {i}: {bad.size} rows carry rdi of another vCPU, first at row {bad[0]}"
        top = STACK_TOP - i * STACK_PER_VCPU
        sp = rsp[mine] & (0xFFFF if mode == "real" else 0xFFFFFFFFFFFFFFFF)
        assert int(sp.min()) >= top - 64 and int(sp.max()) <= top, (i, hex(int(sp.min())), hex(int(sp.max())))
        pcs = t.pc[mine]
        if not np.array_equal(pcs, ref):
            k = int(np.flatnonzero(pcs != ref)[0])
            pytest.fail(f"vCPU {i}: pc sequence differs from the single-vCPU run at its event {k}: "
                        f"{int(pcs[k]):#x} != {int(ref[k]):#x}")
        assert np.all(t.exception[mine] == 1)
        # DR6 of a single-step trap: BS set, no breakpoint condition bits.
        assert np.all(t.dr6[mine] & 0x400F == 0x4000)


@pytest.mark.parametrize("mode", ["real", "protected", "long"])
@pytest.mark.parametrize("nvcpus", [2, 4])
def test_multi_vcpu_single_step_small(nvcpus: int, mode: str) -> None:
    with Machine(mode=mode, vcpus=nvcpus) as m:
        m.load_asm(source(mode))
        t = m.trace(GuestDebug(single_step=True), max_events=SMALL_EVENTS, registers=("rdi", "rsp"))
        check_multi_vcpu_trace(t, nvcpus, SMALL_EVENTS, mode)


@pytest.mark.parametrize(("nvcpus", "mode"), [(2, "long"), (4, "real")])
def test_multi_vcpu_single_step_1m_events_each(nvcpus: int, mode: str) -> None:
    ref = reference_pcs(mode, BIG_EVENTS)  # built first, so its time is not the run's
    assert len(ref) == BIG_EVENTS
    with Machine(mode=mode, vcpus=nvcpus) as m:
        m.load_asm(source(mode))
        start = time.monotonic()
        t = m.trace(GuestDebug(single_step=True), max_events=BIG_EVENTS, registers=("rdi", "rsp"))
        elapsed = time.monotonic() - start
        check_multi_vcpu_trace(t, nvcpus, BIG_EVENTS, mode)
        print(f"\n{nvcpus} vCPUs x {BIG_EVENTS:,} events ({mode}): {elapsed:.1f} s, "
              f"{len(t) / elapsed:,.0f} events/s in all")


def test_multi_vcpu_second_trace_continues_each_vcpu() -> None:
    """Two traces in a row: each vCPU's second part continues its first exactly."""
    n = 5_000
    ref = reference_pcs("long", 2 * n)
    with Machine(mode="long", vcpus=2) as m:
        m.load_asm(source("long"))
        first = m.trace(GuestDebug(single_step=True), max_events=n)
        second = m.trace(GuestDebug(single_step=True), max_events=n)
        for i in range(2):
            pcs = np.concatenate([first.pc[first.vcpu == i], second.pc[second.vcpu == i]])
            assert np.array_equal(pcs, ref), f"vCPU {i} lost or repeated events between the traces"


def test_multi_vcpu_ctrl_c_keeps_every_vcpus_rows() -> None:
    """Ctrl-C while 2 vCPUs single-step: each vCPU's rows are a gap-free prefix."""
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None
    with Machine(mode="long", vcpus=2) as m:
        m.load_asm(source("long"))
        done = threading.Event()

        def fire() -> None:
            if not done.wait(0.4):
                signal.pthread_kill(main, signal.SIGINT)

        th = threading.Thread(target=fire, daemon=True)
        th.start()
        try:
            with pytest.raises(KeyboardInterrupt) as info:
                m.trace(GuestDebug(single_step=True), timeout=30, registers=("rdi",))
        finally:
            done.set()
            th.join()
        t = info.value.trace  # type: ignore[attr-defined]
        assert m.last_trace is t
        assert t.stop_reason == StopReason.INTERRUPTED
        assert len(t) == t.event_count > 0
        assert np.array_equal(t.seq, np.arange(len(t), dtype=np.uint64))
        ref = reference_pcs("long", int(np.bincount(t.vcpu).max()))
        for i in range(2):
            mine = t.vcpu == i
            assert np.all(t.registers["rdi"][mine] == i)
            pcs = t.pc[mine]
            assert np.array_equal(pcs, ref[: len(pcs)]), f"vCPU {i}: rows missing or out of order"
            # The vCPU stopped exactly where its last row says.
            assert m.vcpu(i).regs["rip"] == int(pcs[-1])


@pytest.mark.requires_kvm
def test_streamed_multi_vcpu_run_keeps_per_vcpu_seq(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Streamed with several vCPUs, every row keeps its per-vCPU seq, in the parts
    written during the run and in the tail written at the end alike."""
    pytest.importorskip("pyarrow")
    import kvmtrace

    with Machine(memory_size=1 << 20, mode="long", vcpus=2) as m:
        m.load_asm("_start: inc %eax\n jmp _start\n")
        t = m.trace(GuestDebug(single_step=True), max_events=2500, sink=tmp_path / "run.parquet", sink_rows=1000)
    assert t.event_count == 5000
    back = kvmtrace.read_trace(tmp_path / "run.parquet")
    assert len(back) == 5000
    for v in (0, 1):
        seq = np.sort(back.seq[back.vcpu == v])
        assert np.array_equal(seq, np.arange(2500, dtype=np.uint64)), f"vCPU {v}"
