"""Trace windows and the flight recorder on real KVM (issue 11).

The guest calls a small function many times; every instruction has a label, so the
rows a window must hold follow from the architecture and the symbols alone: the
trigger (an instruction fault, pc at `f`), then one trap per instruction executed,
each reporting the pc after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kvmtrace
from kvmtrace import NO_WINDOW, GuestDebug, HwBreakpoint, InvalidConfigError, Machine, StopReason, Window

from guests import MODES, loop_source, loop_step_pcs

pytestmark = pytest.mark.requires_kvm

CALLS = 25

# `f` is called CALLS times; it writes `data` (a data-breakpoint target) and returns.
CALLER = """
_start:  mov $%(n)d, %%ecx
again:   call f
after:   dec %%ecx
         jnz again
         mov $0x2a, %%al
         out %%al, $0xf4
f:       mov %%ecx, %%eax
f1:      mov %%eax, (0x1000)
f2:      add $2, %%eax
f3:      ret
"""


def caller(n: int = CALLS) -> str:
    return CALLER % {"n": n}


def windows_of(t: kvmtrace.Trace) -> list[list[int]]:
    """The pcs of each window, in window order (one vCPU)."""
    assert t.window is not None
    return [t.pc[t.window == k].tolist() for k in range(int(t.window.max()) + 1)] if len(t) else []


@pytest.mark.parametrize("mode", MODES)
def test_steps_window_holds_exactly_the_architectural_steps(mode: str) -> None:
    with Machine(mode=mode) as m:
        p = m.load_asm(caller())
        t = m.trace(window=Window("f", steps=4))
    s = p.symbol
    assert t.stop_reason == StopReason.EXIT_PORT, t.stop_detail
    assert t.windows == CALLS and t.window_spec == Window(s("f"), steps=4)
    # The trigger row (a fault: pc at f), then the pc after each of the 4 instructions.
    assert windows_of(t) == [[s("f"), s("f1"), s("f2"), s("f3"), s("after")]] * CALLS
    assert (t.window != NO_WINDOW).all(), "nothing is recorded outside a window"
    assert t.window.dtype == np.int32 and (t.exception == kvmtrace._core.VECTOR_DB).all()
    assert [h for h in t.hits if h["kind"] == "window"] == [
        {"kind": "window", "slot": 0, "addr": s("f"), "len": 1, "count": CALLS}]


def test_until_closes_at_its_pc_and_repeat_counts_windows() -> None:
    with Machine() as m:
        p = m.load_asm(caller())
        t = m.trace(window=Window("f", until="f2", repeat=3))
    s = p.symbol
    assert windows_of(t) == [[s("f"), s("f1"), s("f2")]] * 3
    assert t.windows == 3 and t.stop_reason == StopReason.EXIT_PORT


def test_steps_and_until_whichever_comes_first() -> None:
    with Machine() as m:
        p = m.load_asm(caller(3))
        t = m.trace(window=Window("f", steps=10, until="f1"))
    s = p.symbol
    assert windows_of(t) == [[s("f"), s("f1")]] * 3


def test_windows_with_an_exec_breakpoint_outside_and_inside() -> None:
    with Machine() as m:
        p = m.load_asm(caller(5))
        s = p.symbol
        debug = GuestDebug(hw_breakpoints=[HwBreakpoint(s("after")), HwBreakpoint(s("f2"))])
        t = m.trace(debug, window=Window("f", steps=3))
    rows = list(zip(t.pc.tolist(), t.window.tolist()))
    one_call = [
        (s("f"), 0), (s("f1"), 0), (s("f2"), 0),  # trigger, two steps
        (s("f2"), 0),                             # the user's breakpoint on f2: a row, not a step
        (s("f3"), 0),                             # the third step closes the window
        (s("after"), NO_WINDOW),                  # outside: the user's breakpoint on `after`
    ]
    expected = [(pc, k if k == NO_WINDOW else i) for i in range(5) for pc, k in one_call]
    assert rows == expected
    assert t.dr6[1] & kvmtrace._core.Dr6.BS and t.dr6[0] & kvmtrace._core.Dr6.b(2), "the trigger sits in slot 2"
    counts = {(h["kind"], h["addr"]): h["count"] for h in t.hits}
    assert counts == {("exec", s("after")): 5, ("exec", s("f2")): 5, ("window", s("f")): 5}


def test_windows_with_a_data_breakpoint_keep_it_armed() -> None:
    """The user's data breakpoint stays armed in slot 0 in and out of windows: a window
    of one step closes before `f1` writes, so the write runs free and its trap (B0, pc
    after the write) is the only row outside the windows. Whether this host reports
    data breakpoints at all is the conformance suite's question (hw_write_bp); here the
    windows are exact and the hit counts agree with the DR6 the rows carry."""
    with Machine() as m:
        p = m.load_asm(caller(4))
        debug = GuestDebug(hw_breakpoints=[HwBreakpoint(0x1000, "write", 4)])
        t = m.trace(debug, window=Window("f", steps=1))
    s = p.symbol
    assert windows_of(t) == [[s("f"), s("f1")]] * 4
    b0 = (t.dr6 & kvmtrace._core.Dr6.b(0)) != 0
    outside = t.window == NO_WINDOW
    assert t.pc[outside].tolist() == [s("f2")] * int(outside.sum()) and b0[outside].all()
    assert t.hits[0] == {"kind": "write", "slot": 0, "addr": 0x1000, "len": 4, "count": int(b0.sum())}
    assert t.hits[1]["kind"] == "window" and t.hits[1]["slot"] == 1 and t.windows == 4


def test_user_single_step_with_windows_labels_the_window_rows() -> None:
    with Machine() as m:
        p = m.load_asm(caller(3))
        plain = m.trace(GuestDebug(single_step=True))
    with Machine() as m:
        m.load_asm(caller(3))
        t = m.trace(GuestDebug(single_step=True), window=Window("f", steps=2))
    s = p.symbol
    trigger = (t.pc == s("f")) & (t.dr6 & kvmtrace._core.Dr6.BS == 0)
    # Every step of the plain trace, plus one trigger row (the fault at f after the
    # step onto it) per window.
    assert t.pc[~trigger].tolist() == plain.pc.tolist()
    assert int(trigger.sum()) == 3 == t.windows
    assert windows_of(t) == [[s("f"), s("f1"), s("f2")]] * 3


def test_each_vcpu_opens_its_own_windows() -> None:
    # HLT stops one vCPU (the exit port would stop the whole VM).
    with Machine(vcpus=2) as m:
        p = m.load_asm(caller(6).replace("out %%al, $0xf4".replace("%%", "%"), "hlt"))
        t = m.trace(window=Window("f", steps=1))
    s = p.symbol
    assert t.per_vcpu_stop == ["hlt", "hlt"], t.per_vcpu_stop
    assert t.windows == 12
    for v in (0, 1):
        mine = t.vcpu == v
        pcs, labels = t.pc[mine].tolist(), t.window[mine].tolist()
        assert pcs == [s("f"), s("f1")] * 6, v
        assert labels == [k for k in range(6) for _ in range(2)], v


def test_windows_stream_to_a_sink_with_their_column(tmp_path: Path) -> None:
    with Machine() as m:
        m.load_asm(caller())
        t = m.trace(window=Window("f", steps=3), sink=tmp_path / "w.parquet", sink_rows=7)
    back = kvmtrace.read_trace(tmp_path / "w.parquet")
    assert len(back) == CALLS * 4 == t.event_count
    assert back.window is not None and back.window.tolist() == [k for k in range(CALLS) for _ in range(4)]
    assert back.windows == CALLS and back.window_spec == t.window_spec
    assert back.hits == t.hits


def test_ring_keeps_exactly_the_last_rows_of_a_million_events() -> None:
    n = 340_000  # 3n + 2 = 1,020,002 single steps
    with Machine() as m:
        p = m.load_asm(loop_source(n))
        t = m.trace(GuestDebug(single_step=True), ring=1000)
    total = 3 * n + 2
    assert t.stop_reason == StopReason.EXIT_PORT and t.event_count == total
    assert len(t) == 1000 and t.dropped_events == total - 1000
    assert t.seq.tolist() == list(range(total - 1000, total)), "seq is each row's place in the run"
    assert t.pc.tolist() == loop_step_pcs(p, n)[-1000:]


def test_ring_memory_does_not_grow_with_the_run() -> None:
    sizes = []
    for n in (1_000, 100_000):
        with Machine() as m:
            m.load_asm(loop_source(n))
            t = m.trace(GuestDebug(single_step=True), ring=500, registers=["rax"])
        assert len(t) == 500
        sizes.append(t.memory_bytes)
    assert sizes[0] == sizes[1]


def test_ring_of_windows() -> None:
    with Machine() as m:
        p = m.load_asm(caller())
        t = m.trace(window=Window("f", steps=4), ring=12)
    s = p.symbol
    assert t.dropped_events == CALLS * 5 - 12 and t.windows == CALLS
    assert t.pc.tolist() == ([s("f"), s("f1"), s("f2"), s("f3"), s("after")] * CALLS)[-12:]
    assert t.window.tolist() == [k for k in range(CALLS) for _ in range(5)][-12:]


TRIPLE = loop_source(2_000).replace("out %al, $0xf4", "ud2")  # #UD with no IDT: triple fault


def test_ring_written_on_a_triple_fault_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "crash.parquet"
    with Machine() as m:
        m.load_asm(TRIPLE)
        with pytest.raises(kvmtrace.GuestFaultError) as e:
            m.trace(GuestDebug(single_step=True), ring=100, ring_sink=out)
    t = e.value.trace  # type: ignore[attr-defined]
    assert t.stop_reason == StopReason.SHUTDOWN and len(t) == 100
    back = kvmtrace.read_trace(out)
    assert back.stop_reason == StopReason.SHUTDOWN
    assert back.pc.tolist() == t.pc.tolist() and back.seq.tolist() == t.seq.tolist()
    assert back.dropped_events == t.dropped_events == t.event_count - 100


def test_ring_sink_is_written_only_on_a_fault(tmp_path: Path) -> None:
    out = tmp_path / "never.parquet"
    with Machine() as m:
        m.load_asm(loop_source(50))
        t = m.trace(GuestDebug(single_step=True), ring=10, ring_sink=out)
    assert t.stop_reason == StopReason.EXIT_PORT and not out.exists()
    with Machine() as m:
        m.load_asm(TRIPLE)
        t = m.trace(GuestDebug(single_step=True), ring=10, ring_sink=out, raise_on_fault=False)
    assert t.stop_reason == StopReason.SHUTDOWN and kvmtrace.read_trace(out).pc.tolist() == t.pc.tolist()


@pytest.mark.parametrize(("kwargs", "field"), [
    (lambda: dict(window=Window(0x8000)), "window"),
    (lambda: dict(window=Window(0x8000, steps=0)), "window.steps"),
    (lambda: dict(window=Window(0x8000, steps=1, repeat=0)), "window.repeat"),
    (lambda: dict(window=Window(0x8000, steps=1, repeat=False)), "window.repeat"),
    (lambda: dict(window=Window(1.5, steps=1)), "window.start"),
    (lambda: dict(window=Window("nosuch", steps=1)), "window.start"),
    (lambda: dict(window=Window("f", until="nosuch")), "window.until"),
    (lambda: dict(window=Window(0x8000, steps=1, block_irq="yes")), "window.block_irq"),
    (lambda: dict(window="f"), "window"),
    (lambda: dict(window=Window(0x8000, steps=1),
                  debug=GuestDebug(hw_breakpoints=[HwBreakpoint(0x100 * i) for i in range(1, 5)])), "window"),
    (lambda: dict(ring=0), "ring"),
    (lambda: dict(ring=-1), "ring"),
    (lambda: dict(ring="big"), "ring"),
    (lambda: dict(ring=10, sink=object()), "sink"),
    (lambda: dict(ring=10, sink_rows=5, sink=_NullSink()), "ring"),
    (lambda: dict(ring_sink="/tmp/x"), "ring_sink"),
    (lambda: dict(ring=5, ring_sink=42), "ring_sink"),
])
def test_bad_window_and_ring_arguments_name_the_field(kwargs, field: str) -> None:  # type: ignore[no-untyped-def]
    with Machine() as m:
        m.load_asm(caller(2))
        with pytest.raises(InvalidConfigError, match=rf"invalid {field}\b"):
            kw = kwargs()
            m.trace(kw.pop("debug", None), **kw)
        # Nothing was lost: the machine still traces.
        assert m.trace(window=Window("f", steps=1)).windows == 2


class _NullSink:
    def write(self, chunk: object) -> None:
        pass

    def close(self, trace: object) -> None:
        pass
