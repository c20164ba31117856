"""`kvmtrace trace --out`: the engine streams straight into the ParquetSink, in parts of
exactly --part-rows rows, and the live line reads the engine's Progress counter."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import kvmtrace
from kvmtrace import GuestDebug, Machine, guests
from kvmtrace._core import Progress
from kvmtrace.cli import run
from kvmtrace.cli.progress import ProgressLine

pq = pytest.importorskip("pyarrow.parquet")

REGISTERS = ("rip", "rsp")


def in_memory_demo_trace() -> kvmtrace.Trace:
    with Machine(memory_size=16 << 20, mode="long") as m:
        m.load_asm(guests.source("demo"))
        return m.trace(GuestDebug(single_step=True), registers=REGISTERS)


def part_files(d: Path) -> list[Path]:
    return sorted(d.glob("part-*.parquet"))


@pytest.mark.requires_kvm
@pytest.mark.parametrize("part_rows", [1000, 1500])
def test_parts_have_part_rows_and_equal_an_in_memory_trace(capsys, tmp_path, part_rows):  # type: ignore[no-untyped-def]
    out = tmp_path / "run.parquet"
    code = run(["trace", "demo", "-s", "-r", ",".join(REGISTERS), "-o", str(out), "--part-rows", str(part_rows),
                "--no-analysis"])
    _, err = capsys.readouterr()
    assert code == 0, err

    reference = in_memory_demo_trace()
    n = len(reference)
    assert n > 2 * part_rows and n % part_rows  # several full parts and a shorter last one
    sizes = [pq.read_metadata(f).num_rows for f in part_files(out)]
    assert sizes[:-1] == [part_rows] * (n // part_rows)
    assert sizes[-1] == n % part_rows

    streamed = kvmtrace.read_trace(out)
    assert len(streamed) == n and streamed.stop_reason == reference.stop_reason
    for column in ("seq", "pc", "dr6", "exception"):
        assert np.array_equal(getattr(streamed, column), getattr(reference, column)), column
    for r in REGISTERS:
        assert np.array_equal(streamed.registers[r], reference.registers[r]), r


@pytest.mark.requires_kvm
def test_engine_gets_the_parquet_sink_itself(capsys, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """No Python sink in between: each row goes from the engine to Parquet once."""
    from kvmtrace.export import ParquetSink

    seen: list[dict[str, Any]] = []
    original = Machine.trace

    def spy(self, debug=None, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw)
        return original(self, debug, **kw)

    monkeypatch.setattr(Machine, "trace", spy)
    assert run(["trace", "demo", "-o", str(tmp_path / "a.parquet"), "--part-rows", "777", "--no-analysis"]) == 0
    assert run(["trace", "demo", "--no-analysis"]) == 0
    capsys.readouterr()
    streamed, in_memory = seen
    assert type(streamed["sink"]) is ParquetSink and streamed["sink_rows"] == 777
    assert in_memory["sink"] is None and in_memory["sink_rows"] is None
    assert all(isinstance(kw["progress"], Progress) for kw in seen)


def test_progress_line_reads_the_counters() -> None:
    sink = SimpleNamespace(path=Path("/data/run.parquet"), parts=3)
    counters = SimpleNamespace(events=12_345, exits=12_345)
    text = ProgressLine(counters, sink).text()  # type: ignore[arg-type]
    assert text.startswith("tracing: 12,345 events ")
    assert "exits" not in text  # single-step: one exit per event, said once
    assert text.endswith("-> /data/run.parquet (3 parts)")
    counters.exits = 99_000
    assert "99,000 exits" in ProgressLine(counters).text()  # type: ignore[arg-type]


@pytest.mark.requires_kvm
def test_progress_counts_every_event_of_a_trace() -> None:
    progress = Progress()
    with Machine(memory_size=16 << 20, mode="long") as m:
        m.load_asm(guests.source("demo"))
        t = m.trace(GuestDebug(single_step=True), progress=progress)
    assert progress.events == len(t) > 0
    assert ProgressLine(progress).text().startswith(f"tracing: {len(t):,} events ")


@pytest.mark.requires_kvm
def test_ctrl_c_during_a_part_write_keeps_every_row(capsys, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Ctrl-C while a part is being written: that part is not on disk yet, so the final
    part holds its rows with the tail; the dataset lacks no recorded event."""
    from kvmtrace.export import ParquetSink

    original = ParquetSink._write_part
    calls = []

    def interrupted_second_part(self, t, meta):  # type: ignore[no-untyped-def]
        calls.append(t)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, t, meta)

    monkeypatch.setattr(ParquetSink, "_write_part", interrupted_second_part)
    out = tmp_path / "run.parquet"
    code = run(["trace", "demo", "-o", str(out), "--part-rows", "1000", "--no-analysis"])
    stdout, err = capsys.readouterr()
    assert code == 130
    assert "interrupted" in err
    stored = kvmtrace.read_trace(out)
    assert len(stored) == stored.event_count > 1000
    assert stored.seq.tolist() == list(range(len(stored))), "each row once, in order"
    assert not [ln for ln in err.splitlines() if ln.startswith("warning: ")], err
