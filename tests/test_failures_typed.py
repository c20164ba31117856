"""Failures keep their type through the engine: the faulting vCPU's state, callback
exceptions as themselves, sink failures that lose and duplicate no row, read-only views."""

from __future__ import annotations

import numpy as np
import pytest

from kvmtrace import GuestDebug, GuestFaultError, Machine, SinkError
from kvmtrace.export import ParquetSink, read_trace

pytestmark = pytest.mark.requires_kvm

# vCPU i starts with rdi = i (README layout): vCPU 1 executes ud2 with no IDT handler
# (a triple fault); vCPU 0 spins until the shutdown stops it.
FAULT_ON_VCPU1 = """
_start: cmp $1, %edi
        je fault
spin:   jmp spin
fault:  ud2
"""


def test_fault_carries_the_faulting_vcpu() -> None:
    with Machine(memory_size=1 << 20, mode="long", vcpus=2) as m:
        prog = m.load_asm(FAULT_ON_VCPU1)
        with pytest.raises(GuestFaultError) as ei:
            m.trace(GuestDebug(), timeout=10)
        e = ei.value
        assert e.stop_reason == "shutdown"  # type: ignore[attr-defined]
        assert e.vcpu == 1  # type: ignore[attr-defined]
        assert e.registers["rdi"] == 1  # type: ignore[attr-defined]
        assert e.registers["rip"] != prog.symbol("spin")  # type: ignore[attr-defined]


class HandlerFailed(Exception):
    pass


def test_handler_exception_comes_out_as_itself() -> None:
    raised = HandlerFailed("port 0x60 is broken")

    def handler(port: int, data: bytes | None, size: int, vcpu: int) -> int:
        raise raised

    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm("_start: in $0x60, %al\n hlt\n")
        with pytest.raises(HandlerFailed) as ei:
            m.trace(GuestDebug(), io_handler=handler, timeout=10)
        assert ei.value is raised
        assert ei.value.stop_reason == "handler_error"  # type: ignore[attr-defined]
        assert ei.value.trace.stop_reason == "handler_error"  # type: ignore[attr-defined]


LOOP = "_start: mov $5000, %ecx\nl: dec %ecx\n jnz l\n out %al, $0xf4\n"


class FailingSink(ParquetSink):
    """A Parquet sink whose ``fail_at``-th part (1-based) fails to write, as on a full disk."""

    def __init__(self, *a: object, fail_at: int, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.fail_at, self.calls = fail_at, 0

    def _write_part(self, rows: object, meta: dict) -> object:  # type: ignore[override]
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(28, "No space left on device")
        return super()._write_part(rows, meta)


@pytest.mark.parametrize("fail_at", [1, 2, 5])
def test_sink_failure_keeps_every_row_once(tmp_path, fail_at: int) -> None:
    debug = GuestDebug(single_step=True)
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm(LOOP)
        whole = m.trace(debug)
        m.reset()
        sink = FailingSink(tmp_path / "run.parquet", m, debug, fail_at=fail_at)
        with pytest.raises(SinkError) as ei:
            m.trace(debug, sink=sink, sink_rows=1000)
    kept = ei.value.trace  # type: ignore[attr-defined]
    assert kept.stop_reason == "sink_error"
    assert isinstance(ei.value.__cause__, OSError)
    on_disk = read_trace(tmp_path / "run.parquet")
    assert len(on_disk) == 1000 * (fail_at - 1), "exactly the parts written before the failure"
    rows = np.concatenate([on_disk.seq, kept.seq])
    assert rows.tolist() == list(range(len(rows))), "no row lost, none duplicated"
    pcs = np.concatenate([on_disk.pc, kept.pc])
    assert pcs.tolist() == whole.pc[: len(pcs)].tolist()


def test_columns_are_read_only_from_the_start() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm(LOOP)
        t = m.trace(GuestDebug(single_step=True), max_events=10)
    for name in t.column_names:
        col = t.column(name)
        assert not col.flags.writeable, name
        with pytest.raises(ValueError):
            col.setflags(write=True)
        assert np.shares_memory(col, t.column(name))
