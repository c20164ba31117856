"""machine.trace(): single-step and breakpoint recording on real /dev/kvm."""

from __future__ import annotations

import time

import numpy as np
import pytest

import kvmtrace
from kvmtrace import GuestDebug, HwBreakpoint, Machine, StopReason

from guests import MODES, four_targets, loop_source, loop_step_pcs

pytestmark = pytest.mark.requires_kvm

DR6_CLEAN = 0xFFFF0FF0
BS = 1 << 14


@pytest.mark.parametrize("mode", MODES)
def test_single_step_gives_the_architectural_pc_sequence(mode: str) -> None:
    n = 7
    with Machine(memory_size=1 << 20, mode=mode) as m:
        prog = m.load_asm(loop_source(n))
        t = m.trace(GuestDebug(single_step=True), registers=("rip", "rcx"))
        expected = loop_step_pcs(prog, n)
        assert t.pc.tolist() == expected
        assert (t.exception == 1).all()
        assert (t.dr6 & BS == BS).all()
        assert (t.dr6 == DR6_CLEAN | BS).all(), "a single-step trap reports exactly BS"
        assert t.registers["rip"].tolist() == expected
        assert t.seq.tolist() == list(range(len(expected)))
        assert (t.vcpu == 0).all()
        assert np.all(np.diff(t.time_ns.astype(np.int64)) >= 0)
        assert t.stop_reason == StopReason.EXIT_PORT and t.exit_code == 0x2A
        assert t.event_count == len(t) and t.events_per_s > 0 and t.mode == mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("slot", range(4))
def test_exec_breakpoint_in_each_debug_register(mode: str, slot: int) -> None:
    n = 3
    with Machine(memory_size=1 << 20, mode=mode) as m:
        prog = m.load_asm(four_targets(n))
        target = prog.symbol(f"t{slot}")
        # Fill the other slots with breakpoints that never fire.
        bps = [HwBreakpoint(0x7000 + i) for i in range(4)]
        bps[slot] = HwBreakpoint(target)
        t = m.trace(GuestDebug(hw_breakpoints=bps))
        assert t.pc.tolist() == [target] * n, "one hit per pass: none repeated, none missed"
        assert (t.exception == 1).all()
        assert (t.dr6 & 0xF == 1 << slot).all()
        assert t.stop_reason == "exit_port"


@pytest.mark.parametrize("mode", MODES)
def test_continuing_after_a_hit_neither_repeats_nor_misses(mode: str) -> None:
    n = 4
    with Machine(memory_size=1 << 20, mode=mode) as m:
        prog = m.load_asm(four_targets(n))
        dbg = GuestDebug(hw_breakpoints=[HwBreakpoint(prog.symbol("t0")), HwBreakpoint(prog.symbol("t2"))])
        hits = []
        for _ in range(2 * n):
            t = m.trace(dbg, max_events=1)
            assert t.stop_reason == "max_events"
            hits.append((int(t.pc[0]), int(t.dr6[0]) & 0xF))
        assert hits == [(prog.symbol("t0"), 1), (prog.symbol("t2"), 2)] * n  # DR0 -> B0, DR1 -> B1
        t = m.trace(dbg)
        assert len(t) == 0 and t.stop_reason == "exit_port"


@pytest.mark.parametrize("mode", MODES)
def test_single_step_with_breakpoint_reports_both_events(mode: str) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        prog = m.load_asm(four_targets(1))
        t1 = prog.symbol("t1")
        t = m.trace(GuestDebug(single_step=True, hw_breakpoints=[HwBreakpoint(t1)]))
        i = t.pc.tolist().index(t1)
        # The step trap lands on t1 (BS), then the instruction-breakpoint fault at t1 (B0),
        # then the step after executing t1.
        assert t.pc[i] == t1 and t.dr6[i] & BS
        assert t.pc[i + 1] == t1 and t.dr6[i + 1] & 1 and not t.dr6[i + 1] & BS
        assert t.pc[i + 2] == prog.symbol("t2") and t.dr6[i + 2] & BS


@pytest.mark.parametrize("mode", MODES)
def test_stop_at_and_max_events(mode: str) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        prog = m.load_asm(loop_source(50))
        t = m.trace(GuestDebug(single_step=True), max_events=10)
        assert len(t) == 10 and t.stop_reason == "max_events"
        first = t.pc.tolist()
        # Continue: the next trace resumes where the first stopped.
        t2 = m.trace(GuestDebug(single_step=True), stop_at="after")
        assert t2.stop_reason == "stop_at" and t2.pc[-1] == prog.symbol("after")
        assert first + t2.pc.tolist() == loop_step_pcs(prog, 50)[: 10 + len(t2)]


def test_timeout_stops_a_guest_that_spins_without_exits() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm("_start: jmp _start\n")
        start = time.monotonic()
        t = m.trace(GuestDebug(), timeout=0.3)
        took = time.monotonic() - start
        assert t.stop_reason == "timeout" and 0.25 < took < 2.0
        # The vCPU stays usable.
        t = m.trace(GuestDebug(single_step=True), max_events=3)
        assert t.pc.tolist() == [0x8000] * 3


def test_timeout_keeps_a_partial_single_step_trace() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm("_start: inc %ax\n jmp _start\n")
        t = m.trace(GuestDebug(single_step=True), timeout=0.3)
        assert t.stop_reason == "timeout" and len(t) > 100
        assert set(t.pc.tolist()) == {0x8000, 0x8001}


def test_columns_are_zero_copy_read_only_views() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm("_start: inc %ax\n jmp _start\n")
        t = m.trace(GuestDebug(single_step=True), max_events=100_000, registers=("rax",))
    a, b = t.pc, t.pc
    assert np.shares_memory(a, b), "two reads view the same buffer"
    assert a.ctypes.data == b.ctypes.data
    assert a.base is t._t or a.base is not None
    assert not a.flags.writeable and not a.flags.owndata
    with pytest.raises(ValueError):
        a[0] = 1
    assert t.dr6.dtype == np.uint64 and t.exception.dtype == np.uint8 and t.vcpu.dtype == np.uint16
    assert np.shares_memory(t.registers["rax"], t.registers["rax"])
    assert t.dr6.ctypes.data == t._t.dr6.ctypes.data


def test_memory_per_event_is_under_48_bytes() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm("_start: inc %ax\n jmp _start\n")
        t = m.trace(GuestDebug(single_step=True), max_events=200_000)
    assert len(t) == 200_000
    assert t.bytes_per_event < 48, t.bytes_per_event
    assert t.bytes_per_event == kvmtrace._core.FIXED_BYTES_PER_EVENT


def test_rows_iterate_and_index() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        prog = m.load_asm(loop_source(2))
        t = m.trace(GuestDebug(single_step=True), registers=("rip",))
    rows = list(t)
    assert len(rows) == len(t) and rows[0] == t[0] and rows[-1] == t[-1]
    assert rows[0].pc == prog.symbol("loop") and rows[0].registers == {"rip": prog.symbol("loop")}
    with pytest.raises(IndexError):
        t[len(t)]


def test_two_vcpus_are_traced_on_their_own_threads() -> None:
    with Machine(memory_size=1 << 20, mode="long", vcpus=2) as m:
        prog = m.load_asm(loop_source(20))
        t = m.trace(GuestDebug(single_step=True), max_events=40)
    expected = loop_step_pcs(prog, 20)[:40]
    assert t.vcpus == 2 and len(t) == 80
    for v in (0, 1):
        assert t.pc[t.vcpu == v].tolist() == expected
    assert t.seq.tolist() == list(range(80))
    assert np.all(np.diff(t.time_ns.astype(np.int64)) >= 0), "merged by host time"


def test_triple_fault_is_a_clean_error_with_partial_trace() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm("_start: nop\n nop\n ud2\n")
        with pytest.raises(kvmtrace.GuestFaultError, match="triple fault") as e:
            m.trace(GuestDebug(single_step=True))
        err = e.value
        assert err.stop_reason == "shutdown"  # type: ignore[attr-defined]
        assert err.trace.pc.tolist() == [0x8001, 0x8002]  # type: ignore[attr-defined]
        assert "rip" in err.registers  # type: ignore[attr-defined]
        m.reset()
        t = m.trace(GuestDebug(single_step=True), raise_on_fault=False)
        assert t.stop_reason == "shutdown" and len(t) == 2


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: HwBreakpoint(0x8000, "exec", 4), "length"),
        (lambda: HwBreakpoint(0x8001, "write", 2), "addr"),
        (lambda: HwBreakpoint(0x8000, "read", 1), "kind"),
        (lambda: HwBreakpoint(0x8000, "write", 3), "length"),
        (lambda: HwBreakpoint(-1), "addr"),
        (lambda: HwBreakpoint(0x10000, "io", 1), "port"),
        (lambda: GuestDebug(hw_breakpoints=[HwBreakpoint(0x8000)] * 5), "hw_breakpoints"),
        (lambda: GuestDebug(hw_breakpoints=["x"]), "hw_breakpoints"),
        (lambda: GuestDebug(raw_debugreg=(0, 0, 0, 0, 1 << 32)), "raw_debugreg"),
        (lambda: GuestDebug(raw_debugreg=(0, 0, 0)), "raw_debugreg"),
        (lambda: GuestDebug(single_step="yes"), "single_step"),
        (lambda: GuestDebug(inject_db=True, inject_bp=True), "inject_bp"),
        (lambda: GuestDebug(sw_breakpoints=[0x8000, 0x8000]), "sw_breakpoints"),
    ],
)
def test_bad_breakpoints_raise_value_errors_naming_the_field(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(kvmtrace.InvalidConfigError, match=field) as e:
        make()
    assert isinstance(e.value, ValueError)


def test_dr7_encoding() -> None:
    g = GuestDebug(hw_breakpoints=[HwBreakpoint(0x8000), HwBreakpoint(0x1000, "write", 4), HwBreakpoint(0x1008, "rw", 8)])
    assert g.dr7 == 0x400 | 0b010101 | (0b01 << 20) | (0b11 << 22) | (0b11 << 24) | (0b10 << 26)
    assert g.debugreg == [0x8000, 0x1000, 0x1008, 0, 0, 0, 0, g.dr7]
    assert GuestDebug(general_detect=True).dr7 == 0x2400
    assert GuestDebug.from_dict(g.to_dict()) == g


def test_bad_trace_arguments() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm(loop_source(2))
        for kwargs, field in [
            ({"max_events": 0}, "max_events"),
            ({"max_events": -5}, "max_events"),
            ({"timeout": -1}, "timeout"),
            ({"timeout": "soon"}, "timeout"),
            ({"registers": ("rip", "xmm0")}, "registers"),
            ({"registers": "rip"}, "registers"),
            ({"stop_at": "nosuchlabel"}, "nosuchlabel"),
        ]:
            with pytest.raises(kvmtrace.InvalidConfigError, match=field):
                m.trace(GuestDebug(single_step=True), **kwargs)
        with pytest.raises(kvmtrace.InvalidConfigError, match="sw_breakpoints"):
            m.trace(GuestDebug(sw_breakpoints=[m.memory_size + 10]))
        with pytest.raises(kvmtrace.InvalidConfigError, match="CR4.DE"):
            m.trace(GuestDebug(hw_breakpoints=[HwBreakpoint(0x80, "io", 1)]))
        # Nothing was lost: the guest still runs to its end.
        assert m.trace(GuestDebug()).exit_code == 0x2A


def test_unsupported_flag_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Present this host as a kernel without BLOCKIRQ (KVMTRACE_GUESTDBG_MASK masks
    # the flags KVM_CAP_SET_GUEST_DEBUG2 reports).
    monkeypatch.setenv("KVMTRACE_GUESTDBG_MASK", "0x0f0003")
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm(loop_source(2))
        assert m.host_caps["guest_debug_flags"] & 0x100000 == 0
        with pytest.raises(kvmtrace.UnsupportedError, match="KVM_GUESTDBG_BLOCKIRQ"):
            m.trace(GuestDebug(single_step=True, block_irq=True))
        with pytest.raises(kvmtrace.UnsupportedError, match="KVM_GUESTDBG_BLOCKIRQ"):
            m.vcpu(0).set_guest_debug(GuestDebug(block_irq=True))
    monkeypatch.setenv("KVMTRACE_GUESTDBG_MASK", "0x3")
    with Machine(memory_size=1 << 20, mode="long") as m:
        with pytest.raises(kvmtrace.UnsupportedError, match="KVM_GUESTDBG_USE_HW_BP"):
            m.trace(GuestDebug(hw_breakpoints=[HwBreakpoint(0x8000)]))


def test_block_irq_runs_where_supported() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        if not m.host_caps["guest_debug_flags"] & 0x100000:
            pytest.skip("this host lacks KVM_GUESTDBG_BLOCKIRQ")
        prog = m.load_asm(loop_source(3))
        t = m.trace(GuestDebug(single_step=True, block_irq=True))
        assert t.pc.tolist() == loop_step_pcs(prog, 3)
        assert t.debug.block_irq and t.debug.control & 0x100000


def test_software_breakpoints_patch_and_restore_memory() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        prog = m.load_asm(loop_source(1))
        before = m.read(0x8000, 32)
        addr = prog.symbol("i_dec")
        m.trace(GuestDebug(sw_breakpoints=[addr]), raise_on_fault=False, timeout=5)
        assert m.read(0x8000, 32) == before, "original bytes restored after the run"


def test_two_slots_on_one_address_fire_once_per_pass() -> None:
    # DR0 and DR1 watch the same instruction: one fault reporting B0|B1, then the
    # instruction runs (both slots are disarmed for the step over it).
    with Machine(memory_size=1 << 20, mode="long") as m:
        prog = m.load_asm(four_targets(3))
        t1 = prog.symbol("t1")
        t = m.trace(GuestDebug(raw_debugreg=(t1, t1, 0, 0, 0x405)), timeout=5)
        assert t.stop_reason == "exit_port"
        assert t.pc.tolist() == [t1] * 3
        assert (t.dr6 & 0xF == 0b11).all()
