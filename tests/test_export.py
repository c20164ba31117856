"""Trace export: Arrow (zero-copy), Parquet files and streaming datasets, read_trace, Perfetto, symbols."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import kvmtrace
from kvmtrace import GuestDebug, HwBreakpoint, Machine, SinkError, TraceFileError, guests
from kvmtrace.trace import COLUMNS

from guests import NESTED

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from kvmtrace.export import (  # noqa: E402
    FORMAT,
    META_KEY,
    ParquetSink,
    concat_traces,
    list_runs,
    read_runs,
    read_trace,
    to_arrow,
    write_parquet,
)
from kvmtrace.perfetto import perfetto_events, to_perfetto  # noqa: E402
from kvmtrace.symbols import disassemble, dr6_causes, hottest, program_from_trace, symbolize  # noqa: E402

REGS = ("rip", "rsp", "rax")


# A C guest, compiled by cc: _start -> work -> f -> g, twice.
C_GUEST = r"""
__attribute__((noipa)) int g(int x) { return x * 3; }
__attribute__((noipa)) int f(int x) { return g(x + 1) + 1; }
__attribute__((noipa)) int work(void) { return f(2) + f(3); }
void _start(void) {
    int r = work();
    __asm__ volatile("outb %%al, $0xf4" : : "a"(r));
    for (;;) __asm__ volatile("hlt");
}
"""

LOOP = """
_start:
1:  inc %rax
    jmp 1b
"""


def run_demo(**kw):  # type: ignore[no-untyped-def]
    with Machine(mode="long") as m:
        prog = m.load_asm(guests.source("demo"))
        t = m.trace(GuestDebug(single_step=True), registers=REGS, **kw)
        return t, prog, m.host_caps


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return run_demo()


@pytest.fixture(scope="module")
def nested():  # type: ignore[no-untyped-def]
    with Machine(mode="long") as m:
        prog = m.load_asm(NESTED)
        return m.trace(GuestDebug(single_step=True), registers=("rip", "rsp")), prog


def assert_same_columns(a, b, *, skip=()):  # type: ignore[no-untyped-def]
    assert a.column_names == b.column_names
    for n in a.column_names:
        if n in skip:
            continue
        x, y = a.column(n), b.column(n)
        assert x.dtype == y.dtype, n
        assert np.array_equal(x, y), n


def assert_same_facts(a, b):  # type: ignore[no-untyped-def]
    assert b.mode == a.mode
    assert b.vcpus == a.vcpus
    assert b.debug == a.debug
    assert b.stop_reason == a.stop_reason
    assert b.stop_detail == a.stop_detail
    assert b.exit_code == a.exit_code
    assert b.console == a.console
    assert b.event_count == a.event_count
    assert b.exits == a.exits
    assert (b.start_ns, b.end_ns) == (a.start_ns, a.end_ns)
    assert b.per_vcpu_stop == a.per_vcpu_stop
    assert b.code_regions == a.code_regions
    assert b.register_names == a.register_names


# --------------------------------------------------------------------------
# Arrow
# --------------------------------------------------------------------------


@pytest.mark.requires_kvm
def test_arrow_schema_and_zero_copy(demo):  # type: ignore[no-untyped-def]
    t, _, _ = demo
    table = pa.table(t)
    assert table.num_rows == len(t) > 1000
    assert table.schema.names == [*COLUMNS, *REGS]
    want = {"seq": pa.uint64(), "vcpu": pa.uint16(), "time_ns": pa.uint64(), "exception": pa.uint8(),
            "pc": pa.uint64(), "dr6": pa.uint64(), "dr7": pa.uint64()}
    for name, typ in want.items():
        assert table.schema.field(name).type == typ
    for r in REGS:
        assert table.schema.field(r).type == pa.uint64()
        assert table.schema.field(r).metadata == {b"kvmtrace.kind": b"register"}
    # No copy: every Arrow data buffer is the numpy view's memory (which is the Rust vector).
    for name in t.column_names:
        col = table.column(name)
        assert col.num_chunks == 1
        buf = col.chunk(0).buffers()[1]
        assert buf.address == t.column(name).ctypes.data, name
        assert np.shares_memory(col.chunk(0).to_numpy(zero_copy_only=True), t.column(name))
    assert json.loads(table.schema.metadata[META_KEY])["format"] == FORMAT


@pytest.mark.requires_kvm
def test_arrow_table_keeps_the_trace_alive():  # type: ignore[no-untyped-def]
    t, _, _ = run_demo()
    pcs = t.pc.copy()
    table = t.to_arrow()
    del t
    gc.collect()
    assert np.array_equal(table.column("pc").to_numpy(), pcs)


@pytest.mark.requires_kvm
def test_requested_schema_is_cast_when_castable(demo):  # type: ignore[no-untyped-def]
    t, _, _ = demo
    want = pa.schema([("pc", pa.int64()), ("dr6", pa.int64()), ("vcpu", pa.int32())])
    got = pa.RecordBatchReader.from_stream(t, schema=want).read_all()
    assert got.schema == want
    assert np.array_equal(got.column("pc").to_numpy(), t.pc.astype(np.int64))
    # Not castable (no such column): the consumer gets the native schema.
    odd = pa.schema([("nope", pa.string())])
    native = pa.table(t)
    assert pa.RecordBatchReader.from_stream(t, schema=odd).schema.names == native.schema.names
    assert pa.schema(t).names == native.schema.names  # __arrow_c_schema__


@pytest.mark.requires_kvm
def test_polars_and_duckdb_read_the_trace(demo):  # type: ignore[no-untyped-def]
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    t, prog, _ = demo
    df = pl.DataFrame(t)
    assert df.shape == (len(t), len(t.column_names))
    assert df.schema["pc"] == pl.UInt64 and df.schema["vcpu"] == pl.UInt16
    assert np.array_equal(df["pc"].to_numpy(), t.pc)
    # polars.from_arrow on a PyCapsule stream gives a struct Series (polars' choice); unnest is the frame.
    assert pl.from_arrow(t).struct.unnest().equals(df)
    assert pl.from_arrow(t.to_arrow()).equals(df)

    trace = t  # noqa: F841 - DuckDB's replacement scan finds the local by name
    rows = duckdb.sql("select pc, count(*) as n from trace group by pc order by n desc, pc limit 3").fetchall()
    vals, counts = np.unique(t.pc, return_counts=True)
    order = sorted(zip(vals.tolist(), counts.tolist()), key=lambda x: (-x[1], x[0]))[:3]
    assert rows == order
    fib = prog.symbol("fib")
    ((hits,),) = duckdb.sql(f"select count(*) from trace where pc = {fib}").fetchall()
    assert hits == int(np.count_nonzero(t.pc == fib)) > 0


def test_core_import_works_without_pyarrow():  # type: ignore[no-untyped-def]
    code = textwrap.dedent("""
        import sys
        sys.modules["pyarrow"] = None  # an absent package
        import numpy as np
        import kvmtrace
        t = kvmtrace.Trace.from_columns({"pc": np.arange(3), "dr6": np.zeros(3), "dr7": np.zeros(3),
                                         "exception": np.ones(3)})
        assert len(t) == 3
        try:
            t.to_arrow()
        except ImportError as e:
            assert "kvmtrace[arrow]" in str(e), e
            print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_arrow_of_a_synthetic_trace_without_kvm():  # type: ignore[no-untyped-def]
    t = kvmtrace.Trace.from_columns({"pc": np.arange(5, dtype=np.uint64), "dr6": np.full(5, 0xFFFF4FF0),
                                     "dr7": np.zeros(5), "exception": np.ones(5)},
                                    registers={"rsp": np.arange(5) + 100})
    table = to_arrow(t)
    assert table.column("rsp").to_pylist() == [100, 101, 102, 103, 104]
    assert table.column("seq").to_pylist() == [0, 1, 2, 3, 4]
    empty = kvmtrace.Trace.from_columns({k: np.zeros(0) for k in ("pc", "dr6", "dr7", "exception")})
    assert pa.table(empty).num_rows == 0


# --------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------


@pytest.mark.requires_kvm
def test_parquet_file_round_trip(demo, tmp_path):  # type: ignore[no-untyped-def]
    t, prog, caps = demo
    t.metadata["note"] = {"by": "test", "raw": b"\x00\x01"}
    try:
        path = write_parquet(t, tmp_path / "t.parquet", program=prog, host_caps=caps)
    finally:
        del t.metadata["note"]
    assert path.is_file()
    md = pq.read_metadata(path)
    assert md.num_rows == len(t)
    assert md.row_group(0).column(0).compression == "ZSTD"
    meta = json.loads(md.metadata[META_KEY])
    assert meta["format"] == FORMAT and meta["final"] is True
    assert meta["kvmtrace_version"] == kvmtrace.__version__
    assert meta["host"]["kernel"] == os.uname().release
    assert meta["host_caps"] == caps
    assert meta["mode"] == "long" and meta["stop_reason"] == "exit_port"
    assert GuestDebug.from_dict(meta["debug"]) == t.debug

    r = kvmtrace.read_trace(path)
    assert_same_columns(t, r)
    assert_same_facts(t, r)
    assert r.metadata["note"] == {"by": "test", "raw": b"\x00\x01"}
    assert r.metadata["host_caps"] == caps
    assert r.metadata["source"]["complete"] is True
    assert program_from_trace(r).symbol("fib") == prog.symbol("fib")
    # Writing what was read gives the same trace again (facts are kept, not re-measured).
    r2 = kvmtrace.read_trace(write_parquet(r, tmp_path / "again.parquet"))
    assert_same_columns(t, r2)
    assert_same_facts(t, r2)
    assert r2.metadata["host"] == r.metadata["host"] and r2.metadata["created"] == r.metadata["created"]


@pytest.mark.requires_kvm
def test_trace_arrow_parquet_trace_round_trip(demo, tmp_path):  # type: ignore[no-untyped-def]
    t, _, _ = demo
    f = tmp_path / "via_arrow.parquet"
    pq.write_table(pa.table(t.to_arrow()), f)  # any Arrow writer: the schema metadata carries the run facts
    r = read_trace(f)
    assert_same_columns(t, r)
    assert_same_facts(t, r)


@pytest.mark.requires_kvm
def test_streaming_sink_parts_read_back_identical_to_memory(tmp_path):  # type: ignore[no-untyped-def]
    mem, _, _ = run_demo()
    out = tmp_path / "run.parquet"
    with Machine(mode="long") as m:
        m.load_asm(guests.source("demo"))
        tail = m.trace(GuestDebug(single_step=True), registers=REGS, sink=out, sink_rows=1000)
    assert tail.sink_path == str(out)
    assert tail.event_count == len(mem)
    assert len(tail) < 1000  # only the unflushed rows stay in memory
    parts = sorted(p.name for p in out.iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(len(mem) // 1000 + 1)]
    metas = []
    for p in sorted(out.iterdir()):  # every part is a complete Parquet file on its own
        f = pq.ParquetFile(p)
        metas.append(json.loads(f.metadata.metadata[META_KEY]))
        assert f.metadata.row_group(0).column(0).compression == "ZSTD"
    assert [m["part"] for m in metas] == list(range(len(parts)))
    assert all(not m["final"] and m["stop_reason"] == "running" for m in metas[:-1])
    assert metas[-1]["final"] and metas[-1]["stop_reason"] == "exit_port"
    assert metas[0]["code_regions"] and "code_regions" not in metas[1]
    assert sum(m["rows"] for m in metas) == len(mem)

    r = read_trace(out)
    assert_same_columns(mem, r, skip=("time_ns",))  # a second run of the same guest: same events, other clock
    assert np.all(np.diff(r.time_ns.astype(np.int64)) >= 0)
    assert r.stop_reason == mem.stop_reason and r.exit_code == mem.exit_code and r.console == mem.console
    assert r.event_count == len(mem) and r.debug == mem.debug and r.code_regions == mem.code_regions


@pytest.mark.requires_kvm
def test_sink_chunks_concatenate_to_the_whole_trace(tmp_path):  # type: ignore[no-untyped-def]
    class Keep:
        def __init__(self):  # type: ignore[no-untyped-def]
            self.chunks = []

        def write(self, chunk):  # type: ignore[no-untyped-def]
            self.chunks.append(chunk)

        def close(self, trace):  # type: ignore[no-untyped-def]
            self.trace = trace

    mem, _, _ = run_demo()
    k = Keep()
    with Machine(mode="long") as m:
        m.load_asm(guests.source("demo"))
        m.trace(GuestDebug(single_step=True), registers=REGS, sink=k, sink_rows=700)
    whole = concat_traces(k.chunks, k.trace)
    assert len(k.chunks) == len(mem) // 700
    assert_same_columns(mem, whole, skip=("time_ns",))
    assert whole.stop_reason == mem.stop_reason and whole.event_count == mem.event_count


@pytest.mark.requires_kvm
def test_killed_run_leaves_a_readable_dataset(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "killed.parquet"
    script = textwrap.dedent(f"""
        import kvmtrace
        with kvmtrace.Machine(mode="long") as m:
            m.load_asm({LOOP!r})
            m.trace(kvmtrace.GuestDebug(single_step=True), registers=("rax",), sink={str(out)!r}, sink_rows=2000)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.is_dir() and len([p for p in out.iterdir() if p.suffix == ".parquet"]) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            pytest.fail("the streaming run wrote fewer than 3 parts in 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
    t = read_trace(out)
    assert t.stop_reason == kvmtrace.StopReason.UNKNOWN
    assert "did not finish" in t.stop_detail["message"]
    assert t.metadata["source"]["complete"] is False
    assert len(t) >= 6000 and len(t) % 2000 == 0  # whole parts only
    assert np.array_equal(t.seq, np.arange(len(t), dtype=np.uint64))
    steps = np.diff(t.column("rax").astype(np.int64))
    assert set(np.unique(steps).tolist()) <= {0, 1}  # inc rax; jmp: rax grows by one every other event
    assert t.debug == GuestDebug(single_step=True) and t.mode == "long"
    assert t.code_regions  # from the first part


@pytest.mark.requires_kvm
def test_directory_of_runs_is_one_hive_dataset(tmp_path):  # type: ignore[no-untyped-def]
    duckdb = pytest.importorskip("duckdb")
    root = tmp_path / "runs"
    counts = {}
    for run_id, n in (("a", 300), ("b", 500)):
        with Machine(mode="long") as m:
            m.load_asm(LOOP)
            debug = GuestDebug(single_step=True)
            sink = ParquetSink(root, m, debug, run_id=run_id)
            t = m.trace(debug, max_events=n, sink=sink, sink_rows=128)
            counts[run_id] = t.event_count
    assert list_runs(root) == ["a", "b"]
    rows = duckdb.sql(f"select run, count(*), max(seq) from read_parquet('{root}/**/*.parquet', "
                      f"hive_partitioning=true) group by run order by run").fetchall()
    assert rows == [("a", counts["a"], counts["a"] - 1), ("b", counts["b"], counts["b"] - 1)]
    with pytest.raises(TraceFileError, match=r"holds 2 runs \(a, b\).*run=<id>"):
        read_trace(root)
    b = read_trace(root, run="b")
    assert len(b) == counts["b"] and b.metadata["run_id"] == "b" and b.stop_reason == "max_events"
    assert {k: len(v) for k, v in read_runs(root).items()} == counts
    assert len(read_trace(root / "run=a")) == counts["a"]
    with pytest.raises(TraceFileError, match="no run 'c'"):
        read_trace(root, run="c")


@pytest.mark.requires_kvm
def test_sink_refuses_an_existing_dataset(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "d"
    with Machine(mode="long") as m:
        m.load_asm(LOOP)
        m.trace(GuestDebug(single_step=True), max_events=10, sink=out)
        with pytest.raises(SinkError, match="already holds a trace"):
            m.trace(GuestDebug(single_step=True), max_events=10, sink=out)
        t = m.trace(GuestDebug(single_step=True), max_events=20,
                    sink=ParquetSink(out, m, GuestDebug(single_step=True), overwrite=True))
    assert len(read_trace(out)) == 20 == t.event_count


def test_sink_directory_that_cannot_be_created(tmp_path):  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot create the trace directory"):
        ParquetSink(blocker / "sub")
    with pytest.raises(SinkError, match="is a file"):
        ParquetSink(blocker)


@pytest.mark.requires_kvm
def test_sink_write_failure_stops_the_run_and_keeps_rows(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "gone"
    with Machine(mode="long") as m:
        m.load_asm(LOOP)
        debug = GuestDebug(single_step=True)
        sink = ParquetSink(out, m, debug)
        shutil.rmtree(out)  # the directory vanishes under the running trace
        with pytest.raises(SinkError) as ei:
            m.trace(debug, max_events=5000, sink=sink, sink_rows=1000)
    t = ei.value.trace  # type: ignore[attr-defined]
    assert t.stop_reason == "sink_error"
    assert len(t) >= 1000  # the chunk the sink could not take is kept
    assert np.array_equal(t.seq[:1000], np.arange(1000, dtype=np.uint64))
    assert "cannot write part-00000.parquet" in str(ei.value)


@pytest.mark.requires_kvm
def test_after_a_failed_write_disk_and_memory_hold_each_row_once(tmp_path):  # type: ignore[no-untyped-def]
    class FailsOnce(ParquetSink):
        def write(self, chunk):  # type: ignore[no-untyped-def]
            if self.parts == 2:
                self.failed = OSError(28, "No space left on device")
                raise SinkError("cannot write part-00002.parquet: No space left on device")
            super().write(chunk)

    out = tmp_path / "once"
    with Machine(mode="long") as m:
        m.load_asm(LOOP)
        debug = GuestDebug(single_step=True)
        with pytest.raises(SinkError, match="No space left on device") as ei:
            m.trace(debug, max_events=10_000, sink=FailsOnce(out, m, debug), sink_rows=1000)
    mem = ei.value.trace  # type: ignore[attr-defined]
    disk = read_trace(out)  # parts 0 and 1, then a row-less last part recording how the run ended
    assert len(disk) == 2000 and disk.stop_reason == "sink_error" and disk.event_count == mem.event_count
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                     "part-00002.parquet"]
    seq = np.concatenate([disk.seq, mem.seq])
    assert np.array_equal(seq, np.arange(mem.event_count, dtype=np.uint64))  # every row exactly once


@pytest.mark.requires_kvm
def test_sink_disk_full_raises_sink_error(tmp_path):  # type: ignore[no-untyped-def]
    # RLIMIT_FSIZE makes writes past 8 KiB fail with EFBIG, as a full disk fails with ENOSPC.
    out = tmp_path / "full"
    script = textwrap.dedent(f"""
        import resource, signal, kvmtrace, kvmtrace.export, pyarrow.parquet
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        with kvmtrace.Machine(mode="long") as m:
            m.load_asm({LOOP!r})
            resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 10, 8 << 10))
            try:
                m.trace(kvmtrace.GuestDebug(single_step=True), registers=("rax", "rip", "rsp"),
                        max_events=200000, sink={str(out)!r}, sink_rows=50000)
            except kvmtrace.SinkError as e:
                print("SinkError", e.trace.stop_reason, len(e.trace))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    word, reason, n = r.stdout.split()
    assert (word, reason) == ("SinkError", "sink_error") and int(n) >= 50000
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written part left behind
    for p in out.glob("*.parquet"):
        pq.ParquetFile(p)  # every visible part is complete


def test_bad_files_raise_trace_file_error(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(TraceFileError, match="no such file or directory"):
        read_trace(tmp_path / "missing.parquet")
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet at all")
    with pytest.raises(TraceFileError, match="not a readable Parquet file"):
        read_trace(text)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), foreign)
    with pytest.raises(TraceFileError, match=r"not a kvmtrace trace: column\(s\) pc, dr6, dr7, exception missing"):
        read_trace(foreign)
    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"pc": ["x"], "dr6": [0], "dr7": [0], "exception": [1]}), typed)
    with pytest.raises(TraceFileError, match="column 'pc' has type string"):
        read_trace(typed)
    neg = tmp_path / "neg.parquet"
    pq.write_table(pa.table({"pc": [-1], "dr6": [0], "dr7": [0], "exception": [1]}), neg)
    with pytest.raises(TraceFileError, match="column 'pc' does not fit uint64"):
        read_trace(neg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceFileError, match="holds no trace"):
        read_trace(empty)
    good = tmp_path / "good.parquet"
    t = kvmtrace.Trace.from_columns({"pc": np.arange(1000), "dr6": np.zeros(1000), "dr7": np.zeros(1000),
                                     "exception": np.ones(1000)})
    write_parquet(t, good)
    data = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFileError, match="truncated, corrupt"):
        read_trace(cut)
    bad_meta = tmp_path / "badmeta.parquet"
    pq.write_table(pa.table({"pc": [1], "dr6": [0], "dr7": [0], "exception": [1]}).replace_schema_metadata(
        {META_KEY: b"{not json"}), bad_meta)
    with pytest.raises(TraceFileError, match="not valid JSON"):
        read_trace(bad_meta)
    assert issubclass(TraceFileError, kvmtrace.KvmTraceError)


def test_foreign_parquet_with_trace_columns_reads(tmp_path):  # type: ignore[no-untyped-def]
    duckdb = pytest.importorskip("duckdb")
    f = tmp_path / "from_duckdb.parquet"
    duckdb.sql(f"copy (select i::ubigint as pc, 4294918128::ubigint as dr6, 0::ubigint as dr7, 1::utinyint as "
               f"exception, i::ubigint as rsp, 'x' as comment from range(10) t(i)) to '{f}' (format parquet)")
    t = read_trace(f)
    assert len(t) == 10 and t.register_names == ["rsp"]
    assert t.stop_reason == "unknown" and "no kvmtrace metadata" in t.stop_detail["message"]
    assert t.metadata["source"]["ignored_columns"] == ["comment"]


# --------------------------------------------------------------------------
# Perfetto and symbols
# --------------------------------------------------------------------------


def _slices(doc):  # type: ignore[no-untyped-def]
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def _inside(inner, outer):  # type: ignore[no-untyped-def]
    return outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + 1e-6


@pytest.mark.requires_kvm
def test_perfetto_nested_calls_asm(nested, tmp_path):  # type: ignore[no-untyped-def]
    t, prog = nested
    out = tmp_path / "nested.json"
    summary = to_perfetto(t, out, prog)
    doc = json.loads(out.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"vCPU 0"}
    sl = {e["name"]: e for e in _slices(doc)}
    assert sorted(sl) == ["_start", "f", "g", "main"]
    assert [sl[n]["args"]["depth"] for n in ("_start", "main", "f", "g")] == [0, 1, 2, 3]
    assert _inside(sl["g"], sl["f"]) and _inside(sl["f"], sl["main"]) and _inside(sl["main"], sl["_start"])
    assert sl["g"]["dur"] < sl["f"]["dur"]
    assert all(e["tid"] == 0 and e["pid"] == 1 for e in _slices(doc))
    # Timestamps are time_ns relative to the first event, in microseconds.
    t0 = int(t.time_ns[0])
    g_start = int(t.time_ns[np.flatnonzero(t.pc == prog.symbol("g"))[0]])
    assert sl["g"]["ts"] == pytest.approx((g_start - t0) / 1000, abs=1e-3)
    assert summary["slices"] == 4 and summary["max_depth"] == 3 and summary["instants"] == 0


@pytest.mark.requires_kvm
def test_perfetto_nested_calls_c_elf(tmp_path):  # type: ignore[no-untyped-def]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "guest.c"
    src.write_text(C_GUEST)
    elf = tmp_path / "guest.elf"
    r = subprocess.run([cc, "-O1", "-ffreestanding", "-fno-pic", "-fno-pie", "-no-pie", "-nostdlib", "-static",
                        "-mno-red-zone", "-fno-asynchronous-unwind-tables", "-fno-stack-protector",
                        "-fno-optimize-sibling-calls", "-Wl,-N", "-Wl,-Ttext=0x8000", "-Wl,-e,_start",
                        "-Wl,--build-id=none", "-o", str(elf), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cc cannot build a freestanding guest here: {r.stderr.strip()[:200]}")
    with Machine(mode="long") as m:
        prog = m.load_elf(elf)
        t = m.trace(GuestDebug(single_step=True))
    assert t.exit_code == (3 * 3 + 1) + (4 * 3 + 1)
    # Store with the symbols, read back, export without giving the ELF again.
    stored = read_trace(write_parquet(t, tmp_path / "c.parquet", program=prog))
    out = tmp_path / "c.json.gz"
    to_perfetto(stored, out)
    import gzip

    doc = json.loads(gzip.open(out, "rt").read())
    sl = _slices(doc)
    assert [e["name"] for e in sorted(sl, key=lambda e: (e["ts"], e["args"]["depth"]))] == [
        "_start", "work", "f", "g", "f", "g"]
    works = [e for e in sl if e["name"] == "work"]
    fs = [e for e in sl if e["name"] == "f"]
    gs = [e for e in sl if e["name"] == "g"]
    assert len(fs) == len(gs) == 2
    for f_, g_ in zip(sorted(fs, key=lambda e: e["ts"]), sorted(gs, key=lambda e: e["ts"])):
        assert _inside(g_, f_) and _inside(f_, works[0])


@pytest.mark.requires_kvm
def test_perfetto_breakpoint_hits_are_instants(tmp_path):  # type: ignore[no-untyped-def]
    with Machine(mode="long") as m:
        prog = m.load_asm(guests.source("demo"))
        t = m.trace(GuestDebug(hw_breakpoints=[HwBreakpoint(prog.symbol("fib"))]))
    events, summary = perfetto_events(t, prog)
    inst = [e for e in events if e["ph"] == "i"]
    assert len(inst) == len(t) == summary["instants"] > 0
    assert summary["slices"] == 0
    assert all(e["args"]["symbol"] == "fib" and e["args"]["pc"] == hex(prog.symbol("fib")) for e in inst)
    assert {e["args"]["dr6_causes"] for e in inst} == {dr6_causes(int(v)) for v in np.unique(t.dr6)}


def test_perfetto_call_stack_logic_on_a_synthetic_trace(tmp_path):  # type: ignore[no-untyped-def]
    # No KVM: pcs of a single-step trace over assembled code, including an unmatched ret.
    prog = kvmtrace.assemble(NESTED.replace("_start:\n    call main", "_start:\n    ret\n    call main"), "long")
    s = prog.symbols
    code = prog.segments[0]
    start, main, f, g = (s[n].addr for n in ("_start", "main", "f", "g"))
    # main: nop, call f -> f: nop, call g -> g: nop, nop, ret -> f+6: nop, ret -> main+6: nop, ret -> 0x9000
    # (that last ret matches no open call: it closes nothing). The entry's ret is no call: main is outermost.
    pcs = [main, main + 1, f, f + 1, g, g + 1, g + 2, f + 6, f + 7, main + 6, main + 7, 0x9000]
    n = len(pcs)
    t = kvmtrace.Trace.from_columns(
        {"pc": np.array(pcs, dtype=np.uint64), "dr6": np.full(n, 0xFFFF4FF0), "dr7": np.zeros(n),
         "exception": np.ones(n), "time_ns": np.arange(n) * 1000 + 5000},
        mode="long", debug=GuestDebug(single_step=True), code_regions=[(code.addr, code.data)])
    events, summary = perfetto_events(t, prog, entry=start)
    sl = {e["name"]: e for e in events if e["ph"] == "X"}
    assert sorted(sl) == ["f", "g", "main"]
    assert sl["main"]["ts"] == 0.0 and sl["main"]["dur"] == (n - 1) * 1.0  # open until the last event
    assert (sl["f"]["ts"], sl["f"]["dur"]) == (2.0, 7.0)  # from the event at f to the event back in main
    assert (sl["g"]["ts"], sl["g"]["dur"]) == (4.0, 3.0)
    # Without symbols, slices are named by address.
    events, _ = perfetto_events(t, None, entry=start)
    assert sorted(e["name"] for e in events if e["ph"] == "X") == sorted([hex(main), hex(f), hex(g)])


def test_perfetto_one_track_per_vcpu_synthetic():  # type: ignore[no-untyped-def]
    prog = kvmtrace.assemble(NESTED, "long")
    code = prog.segments[0]
    main, f, g = (prog.symbols[n].addr for n in ("main", "f", "g"))
    one = [main, main + 1, f, f + 1, g, g + 1, g + 2, f + 6]  # vCPU 0 returns from g; vCPU 1 stays in g
    two = [main, main + 1, f, f + 1, g, g + 1]
    pcs = np.array(one + two, dtype=np.uint64)
    vcpu = np.array([0] * len(one) + [1] * len(two), dtype=np.uint16)
    n = len(pcs)
    t = kvmtrace.Trace.from_columns(
        {"pc": pcs, "vcpu": vcpu, "dr6": np.full(n, 0xFFFF4FF0), "dr7": np.zeros(n), "exception": np.ones(n),
         "time_ns": np.arange(n) * 1000},
        mode="long", vcpus=2, debug=GuestDebug(single_step=True), code_regions=[(code.addr, code.data)])
    events, summary = perfetto_events(t, prog, entry=prog.entry)
    tracks = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert tracks == {"vCPU 0": 0, "vCPU 1": 1}
    by_tid = {0: [], 1: []}  # type: ignore[var-annotated]
    for e in events:
        if e["ph"] == "X":
            by_tid[e["tid"]].append(e["name"])
    assert sorted(by_tid[0]) == sorted(by_tid[1]) == ["_start", "f", "g", "main"]
    g1 = next(e for e in events if e["ph"] == "X" and e["tid"] == 1 and e["name"] == "g")
    assert g1["ts"] + g1["dur"] == pytest.approx(13.0)  # still open: closes at vCPU 1's last event
    assert summary["vcpus"] == 2


@pytest.mark.requires_kvm
def test_symbolize_hottest_disassemble(demo):  # type: ignore[no-untyped-def]
    t, prog, _ = demo
    names = symbolize(t, prog)
    assert len(names) == len(t)
    assert names[int(np.flatnonzero(t.pc == prog.symbol("fib"))[0])] == "fib"
    hot = hottest(t, prog, 3, disassemble=True)
    vals, counts = np.unique(t.pc, return_counts=True)
    assert hot[0].count == counts.max() and hot[0].symbol.startswith("fib")
    assert hot[0].instruction == "cmp rdi, 2"
    lines = disassemble(t, prog.symbol("fib"), 3, prog)
    assert lines[0] == f"{prog.symbol('fib'):#x} <fib>: cmp rdi, 2"
    assert lines[1].startswith(f"{prog.symbol('fib') + 4:#x} <fib+0x4>: jb short ")
    assert disassemble(t, 0x123456)[0].endswith("(no code bytes)")
