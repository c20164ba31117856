"""Trace export and storage: Arrow (zero-copy), streaming Parquet datasets, reading traces back.

Arrow
    :func:`to_arrow` builds a ``pyarrow.Table`` whose buffers are the trace's numpy
    column views (no copy). ``Trace`` implements the Arrow PyCapsule interface on top
    of it, so ``pyarrow.table(trace)``, ``polars.DataFrame(trace)`` and DuckDB
    (``duckdb.sql("select ... from trace")``) read a trace directly.

    Schema: ``seq`` uint64, ``vcpu`` uint16, ``time_ns`` uint64, ``exception`` uint8,
    ``pc`` uint64, ``dr6`` uint64, ``dr7`` uint64, then one uint64 column per captured
    register under its plain name (``rip``, ``rsp``, ...; field metadata
    ``kvmtrace.kind=register``). All fields are non-nullable. The schema metadata key
    ``kvmtrace`` holds the run facts as JSON (see below).

Parquet
    A trace is stored as a single file (:func:`write_parquet`) or as a dataset
    directory (:class:`ParquetSink`, ``machine.trace(sink="run.parquet")``) holding
    ``part-00000.parquet``, ``part-00001.parquet``, ... Each part is a complete, closed
    zstd Parquet file, written to a hidden temporary name and renamed into place, so a
    killed run leaves only whole parts. ``ParquetSink(root, run_id="a")`` writes to
    ``root/run=a/``: a directory of runs reads as one hive-partitioned dataset, e.g.
    ``duckdb.sql("select run, count(*) from read_parquet('root/**/*.parquet',
    hive_partitioning=true) group by run")``.

    Every part carries the Parquet key-value metadata key ``kvmtrace``: a JSON object
    with ``format`` ("kvmtrace-trace"), ``format_version``, ``kvmtrace_version``,
    ``created``, ``run_uuid``, ``run_id``, ``host`` (kernel, cpu, machine, os,
    python), ``host_caps`` (``Machine.host_caps``), ``mode``, ``vcpus``, ``debug``
    (``GuestDebug.to_dict()``), ``registers``, ``symbols`` ([name, addr, size, kind]),
    ``entry``, ``part``, ``rows``, ``first_row``, ``final`` and ``code_regions``
    ([{"addr", "data": base64}], in the first and the final part). The final part,
    written by ``close()``, adds ``stop_reason``, ``stop_detail``, ``per_vcpu_stop``,
    ``console`` (base64), ``event_count``, ``exits``, ``start_ns``, ``end_ns`` and the
    trace's free ``metadata``. Bytes inside JSON values are ``{"$bytes": base64}``.

:func:`read_trace` reads any of these back (a file, a dataset directory, or a
directory of ``run=<id>`` datasets) into a :class:`kvmtrace.Trace`. A dataset without
a final part (a killed run) still reads, with stop reason ``unknown``.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kvmtrace import _core
from kvmtrace.exceptions import SinkError, TraceFileError
from kvmtrace.trace import COLUMNS, DTYPES, Trace

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ParquetSink",
    "arrow_schema",
    "concat_traces",
    "list_runs",
    "read_runs",
    "read_trace",
    "to_arrow",
    "to_perfetto",
    "write_parquet",
]

FORMAT = "kvmtrace-trace"
FORMAT_VERSION = 1
META_KEY = b"kvmtrace"
PART_RE = re.compile(r"^part-(\d+)\.parquet$")
RUN_RE = re.compile(r"^run=(.+)$")
GP_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12",
                "r13", "r14", "r15", "rip", "rflags")
_ARROW_TYPES = {"seq": "uint64", "vcpu": "uint16", "time_ns": "uint64", "exception": "uint8",
                "pc": "uint64", "dr6": "uint64", "dr7": "uint64"}
# Keys of Trace.metadata that are file facts, not the user's free metadata.
_FACT_KEYS = ("kvmtrace_version", "created", "host", "host_caps", "run_id", "run_uuid", "symbols", "entry", "source")


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError("Arrow/Parquet export needs pyarrow: pip install 'kvmtrace[arrow]'", name="pyarrow") from None
    return pyarrow


def _pq() -> Any:
    _pa()
    import pyarrow.parquet

    return pyarrow.parquet


def _as_trace(t: Any) -> Trace:
    if isinstance(t, Trace):
        return t
    if isinstance(t, _core.Trace):
        return Trace(t)
    raise TypeError(f"expected a kvmtrace.Trace, got {type(t).__name__}")


# --------------------------------------------------------------------------
# Arrow
# --------------------------------------------------------------------------


def arrow_schema(register_names: Sequence[str] = (), metadata: Mapping[bytes, bytes] | None = None) -> Any:
    """The Arrow schema of a trace with these register columns."""
    pa = _pa()
    fields = [pa.field(n, getattr(pa, _ARROW_TYPES[n])(), nullable=False) for n in COLUMNS]
    fields += [pa.field(r, pa.uint64(), nullable=False, metadata={b"kvmtrace.kind": b"register"})
               for r in register_names]
    return pa.schema(fields, metadata=metadata)


def _zero_copy(pa: Any, arr: np.ndarray, typ: Any) -> Any:
    """An Arrow array over ``arr``'s memory (the array keeps ``arr``, and so the trace, alive)."""
    if not arr.flags.c_contiguous:  # never the case for trace columns; kept for safety
        arr = np.ascontiguousarray(arr)
    return pa.Array.from_buffers(typ, len(arr), [None, pa.py_buffer(arr)], null_count=0)


def to_arrow(trace: Any, *, metadata: bool = True) -> Any:
    """The trace as a ``pyarrow.Table`` sharing the column memory (no copy).

    With ``metadata`` the schema carries the run facts under the key ``kvmtrace``
    (so ``pyarrow.parquet.write_table(trace.to_arrow(), f)`` writes a file that
    :func:`read_trace` restores fully).
    """
    pa = _pa()
    t = _as_trace(trace)
    md = {META_KEY: _dumps(_trace_meta(t, final=True))} if metadata else None
    schema = arrow_schema(t.register_names, md)
    arrays = [_zero_copy(pa, t.column(f.name), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _import_schema(pa: Any, capsule: Any) -> Any:
    class _Holder:
        def __arrow_c_schema__(self) -> Any:
            return capsule

    return pa.schema(_Holder())


def arrow_c_stream(trace: Any, requested_schema: Any = None) -> Any:
    """``__arrow_c_stream__``: one record batch; cast to ``requested_schema`` when castable, else as is."""
    pa = _pa()
    table = to_arrow(trace)
    if requested_schema is not None:
        try:
            target = _import_schema(pa, requested_schema)
            table = table.select(target.names).cast(target)
        except Exception:  # not castable: the consumer gets the native schema (PyCapsule protocol)
            pass
    return table.__arrow_c_stream__()


def arrow_c_schema(trace: Any) -> Any:
    t = _as_trace(trace)
    return arrow_schema(t.register_names).__arrow_c_schema__()


# --------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(o)).decode()}
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "value") and isinstance(getattr(o, "value"), (str, int)):  # enums
        return o.value
    return repr(o)


def _json_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "$bytes" in d:
        return base64.b64decode(d["$bytes"])
    return d


def _dumps(d: Mapping[str, Any]) -> bytes:
    return json.dumps(d, default=_json_default, separators=(",", ":")).encode()


def _loads(b: bytes) -> dict[str, Any]:
    return json.loads(b, object_hook=_json_hook)


@lru_cache(maxsize=1)
def host_facts() -> dict[str, Any]:
    """Kernel, CPU model and machine of this host."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = os.uname()
    return {"os": u.sysname, "kernel": u.release, "kernel_version": u.version, "machine": u.machine,
            "cpu": cpu or platform.processor() or None, "python": platform.python_version()}


def _symbols(program: Any) -> list[list[Any]] | None:
    if program is None:
        return None
    return [[s.name, s.addr, s.size, s.kind] for s in sorted(program.symbols.values(), key=lambda s: (s.addr, s.name))]


def _regions_json(regions: Iterable[tuple[int, bytes]]) -> list[dict[str, Any]]:
    return [{"addr": int(a), "data": base64.b64encode(bytes(b)).decode()} for a, b in regions]


def _regions_from_json(v: Any) -> list[tuple[int, bytes]]:
    out = []
    for r in v or []:
        data = r["data"]
        out.append((int(r["addr"]), data if isinstance(data, bytes) else base64.b64decode(data)))
    return out


def _attr(obj: Any, name: str) -> Any:
    """``obj.name``, or None when obj is None or cannot tell (e.g. a closed Machine)."""
    if obj is None:
        return None
    try:
        return getattr(obj, name)
    except Exception:
        return None


def _base_meta(*, machine: Any = None, debug: Any = None, program: Any = None, trace: Trace | None = None,
               host_caps: Mapping[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Facts known before a run ends: version, host, KVM caps, mode, debug config, symbols."""
    from kvmtrace import __version__

    md = dict(trace.metadata) if trace is not None else {}
    if program is None and machine is not None:
        program = getattr(machine, "program", None)
    if host_caps is None and machine is not None:
        host_caps = _attr(machine, "host_caps")
        host_caps = dict(host_caps) if host_caps is not None else None
    m_mode, m_vcpus, m_entry = (_attr(machine, a) for a in ("mode", "vcpu_count", "entry"))
    if debug is None and trace is not None:
        debug = trace.debug
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kvmtrace_version": md.get("kvmtrace_version", __version__),
        "created": md.get("created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "run_uuid": md.get("run_uuid", uuid.uuid4().hex),
        "run_id": run_id if run_id is not None else md.get("run_id"),
        "host": md.get("host") or host_facts(),
        "host_caps": host_caps if host_caps is not None else md.get("host_caps"),
        "mode": trace.mode if trace is not None else m_mode,
        "vcpus": trace.vcpus if trace is not None else m_vcpus,
        "debug": debug.to_dict() if debug is not None else None,
        "symbols": _symbols(program) if program is not None else md.get("symbols"),
        "entry": program.entry if program is not None else (m_entry if m_entry is not None else md.get("entry")),
    }
    return meta


def _run_facts(t: Trace) -> dict[str, Any]:
    user = {k: v for k, v in t.metadata.items() if k not in _FACT_KEYS}
    return {
        "mode": t.mode,
        "vcpus": t.vcpus,
        "debug": t.debug.to_dict() if t.debug is not None else None,
        "stop_reason": t.stop_reason.value,
        "stop_detail": t.stop_detail,
        "per_vcpu_stop": t.per_vcpu_stop,
        "console": t.console,
        "event_count": t.event_count,
        "exits": t.exits,
        "start_ns": t.start_ns,
        "end_ns": t.end_ns,
        "metadata": user,
    }


def _trace_meta(t: Trace, *, final: bool, program: Any = None, machine: Any = None,
                host_caps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta = _base_meta(machine=machine, program=program, trace=t, host_caps=host_caps)
    meta.update(_run_facts(t))
    meta.update(final=final, part=0, rows=len(t), first_row=0, registers=t.register_names,
                code_regions=_regions_json(t.code_regions))
    return meta


def _table(pa: Any, t: Trace, meta: Mapping[str, Any]) -> Any:
    schema = arrow_schema(t.register_names, {META_KEY: _dumps(meta)})
    arrays = [_zero_copy(pa, t.column(f.name), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _check_run_id(run_id: str) -> str:
    run_id = str(run_id)
    if not run_id or "/" in run_id or "\0" in run_id or run_id in (".", ".."):
        raise SinkError(f"invalid run_id {run_id!r}: use a non-empty name without '/'")
    return run_id


def _write_atomically(pq: Any, table: Any, final: Path, tmp: Path, **kw: Any) -> None:
    """Write ``table`` to ``tmp`` and rename it to ``final``: readers (and a run killed
    mid-write) only ever see complete files. On any failure the temporary is removed."""
    try:
        pq.write_table(table, tmp, **kw)
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


class ParquetSink:
    """Streams trace chunks into a Parquet dataset directory (``part-NNNNN.parquet``, zstd).

    ``machine.trace(debug, sink="run.parquet")`` creates one; pass an instance
    (``sink=ParquetSink(root, m, debug, run_id="a")``) for a hive-style ``root/run=a/``.
    ``write(chunk)`` writes one complete part per chunk (raising SinkError when the
    directory is unwritable or the disk is full); ``close(trace)`` writes the tail rows
    and the final run facts as the last part. A directory that already holds parts is
    refused unless ``overwrite=True`` (which deletes only ``*.parquet`` files in it).
    """

    def __init__(self, path: str | os.PathLike[str], machine: Any = None, debug: Any = None, *,
                 run_id: str | None = None, compression: str = "zstd", compression_level: int | None = None,
                 overwrite: bool = False, program: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        self._pa, self._pq = _pa(), _pq()
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) or isinstance(os.fspath(path), bytes):
            raise SinkError(f"invalid sink path {path!r}: give the name of a directory for the Parquet dataset, "
                            f"e.g. sink='run.parquet'")
        root = Path(os.fspath(path))
        if run_id is not None:
            run_id = _check_run_id(run_id)
            self.path = root / f"run={run_id}"
        else:
            self.path = root
            m = RUN_RE.match(root.name)
            run_id = m.group(1) if m else None
        self.run_id = run_id
        self.compression, self.compression_level = compression, compression_level
        self._prepare(overwrite)
        self._meta = _base_meta(machine=machine, debug=debug, program=program, run_id=run_id)
        if metadata:
            self._meta["metadata"] = dict(metadata)
        self._first_regions: list[tuple[int, bytes]] = []
        prog = program if program is not None else getattr(machine, "program", None)
        if prog is not None and machine is not None:
            for seg in prog.segments:
                try:
                    self._first_regions.append((seg.addr, machine.read(seg.addr, len(seg.data))))
                except Exception:
                    self._first_regions.append((seg.addr, seg.data))
        elif prog is not None:
            self._first_regions = [(s.addr, s.data) for s in prog.segments]
        self.parts = 0
        self.rows = 0
        self.register_names: list[str] | None = None
        self.failed: BaseException | None = None
        self.closed = False

    def _prepare(self, overwrite: bool) -> None:
        p = self.path
        try:
            if p.exists() and not p.is_dir():
                if not overwrite:
                    raise SinkError(f"{p} is a file; a Parquet sink writes a dataset directory: choose another path "
                                    f"or pass overwrite=True")
                p.unlink()
            if p.is_dir():
                old = [f for f in p.iterdir() if f.name.endswith(".parquet") or f.name.endswith(".parquet.tmp")]
                if old and not overwrite:
                    raise SinkError(f"{p} already holds a trace ({len(old)} Parquet files): write to a new directory "
                                    f"or pass overwrite=True")
                for f in old:
                    f.unlink()
            p.mkdir(parents=True, exist_ok=True)
        except SinkError:
            raise
        except OSError as e:
            raise SinkError(f"cannot create the trace directory {p}: {_why(e)}") from e
        if not os.access(p, os.W_OK | os.X_OK):
            raise SinkError(f"cannot write to the trace directory {p}: permission denied")

    def _write_part(self, t: Trace, meta: dict[str, Any]) -> Path:
        names = list(t.register_names)
        if self.register_names is None:
            self.register_names = names
        elif names != self.register_names and len(t):
            raise SinkError(f"chunk has register columns {names}, earlier parts have {self.register_names}")
        name = f"part-{self.parts:05d}.parquet"
        final, tmp = self.path / name, self.path / f".{name}.tmp"
        meta.update(part=self.parts, rows=len(t), first_row=self.rows, registers=names or self.register_names or [])
        table = _table(self._pa, t, meta)
        try:
            _write_atomically(self._pq, table, final, tmp, compression=self.compression,
                              compression_level=self.compression_level, row_group_size=max(len(t), 1))
        except Exception as e:
            raise SinkError(f"cannot write {name} in {self.path}: {_why(e)}") from e
        self.parts += 1
        self.rows += len(t)
        return final

    def write(self, chunk: Any) -> None:
        """Write one chunk of rows (a ``kvmtrace._core.Trace``) as the next complete part."""
        if self.closed:
            raise SinkError(f"the sink for {self.path} is closed")
        t = _as_trace(chunk)
        meta = dict(self._meta)
        meta.update(final=False, stop_reason="running", event_count=self.rows + len(t))
        if self.parts == 0:
            meta["code_regions"] = _regions_json(self._first_regions)
        try:
            self._write_part(t, meta)
        except BaseException as e:
            self.failed = e
            raise

    def close(self, trace: Any) -> None:
        """Write the tail rows and the final run facts (stop reason, console, counts) as the last part.

        After a failed ``write`` this is best effort and never raises (the engine
        already reports the SinkError, with the unwritten rows in ``.trace``).
        Otherwise a failure raises SinkError with ``.trace`` set to ``trace``.
        """
        if self.closed:
            return
        self.closed = True
        t = _as_trace(trace)
        meta = dict(self._meta)
        base_md = meta.pop("metadata", None) or {}
        meta.update(_run_facts(t))
        if base_md:
            meta["metadata"] = {**base_md, **meta["metadata"]}
        meta.update(final=True, code_regions=_regions_json(t.code_regions or self._first_regions))
        if self.failed is not None:
            # After a failed write the rows not written stay in memory (.trace) only, so
            # disk and memory never both hold a row; this last part (best effort) only
            # records how the run ended.
            regs = self.register_names or t.register_names
            empty = Trace.from_columns({k: np.zeros(0, DTYPES[k]) for k in COLUMNS}, mode=t.mode,
                                       registers={r: np.zeros(0, np.uint64) for r in regs})
            try:
                self._write_part(empty, meta)
            except Exception:
                pass
            return
        try:
            self._write_part(t, meta)
        except BaseException as e:
            if not isinstance(e, Exception):
                raise
            err = SinkError(f"{e}; the {len(t)} rows not written are in .trace")
            err.trace = trace  # type: ignore[attr-defined]
            raise err from e

    def __repr__(self) -> str:
        return f"<ParquetSink {self.path} parts={self.parts} rows={self.rows}{' closed' if self.closed else ''}>"


def write_parquet(trace: Any, path: str | os.PathLike[str], *, dataset: bool = False, machine: Any = None,
                  program: Any = None, host_caps: Mapping[str, Any] | None = None, compression: str = "zstd",
                  compression_level: int | None = None, row_group_size: int = 1 << 20,
                  overwrite: bool = True, run_id: str | None = None) -> Path:
    """Write an in-memory trace as one Parquet file (or, with ``dataset=True`` or an
    existing directory at ``path``, as a dataset directory with one final part).

    ``program`` (or ``machine.program``) stores the symbol table so later exports can
    name functions; ``machine`` also records its KVM capabilities. Returns the path.
    """
    pa, pq = _pa(), _pq()
    t = _as_trace(trace)
    p = Path(os.fspath(path))
    if dataset or run_id is not None or p.is_dir():
        sink = ParquetSink(p, machine, t.debug, run_id=run_id, compression=compression,
                           compression_level=compression_level, overwrite=overwrite, program=program)
        if host_caps is not None:
            sink._meta["host_caps"] = dict(host_caps)
        sink.close(t)
        return sink.path
    if p.exists() and not overwrite:
        raise TraceFileError(f"{p} exists: pass overwrite=True or choose another name")
    meta = _trace_meta(t, final=True, program=program, machine=machine, host_caps=host_caps)
    table = _table(pa, t, meta)
    try:
        _write_atomically(pq, table, p, p.with_name(f".{p.name}.tmp"), compression=compression,
                          compression_level=compression_level, row_group_size=row_group_size)
    except OSError as e:
        raise TraceFileError(f"cannot write {p}: {_why(e)}") from e
    return p


def concat_traces(chunks: Sequence[Any], final: Any = None) -> Trace:
    """One Trace from sink chunks plus the final (tail) trace, with the final trace's run facts (copies).

    Without ``final`` the facts are the last chunk's (a bigger chunk for a sink).
    """
    if final is None:
        if not chunks:
            raise ValueError("concat_traces needs at least one chunk or a final trace")
        chunks, final = chunks[:-1], chunks[-1]
    f = _as_trace(final)
    parts = [_as_trace(c) for c in chunks if len(c)] + [f]
    cols = {n: np.concatenate([p.column(n) for p in parts]) for n in COLUMNS}
    regs = {n: np.concatenate([p.column(n) for p in parts]) for n in f.register_names}
    return Trace.from_columns(
        cols, mode=f.mode, registers=regs, metadata=f.metadata, stop_reason=f.stop_reason.value,
        stop_detail=f.stop_detail, console=f.console, start_ns=f.start_ns, end_ns=f.end_ns,
        event_count=f.event_count, exits=f.exits, vcpus=f.vcpus, debug=f.debug, code_regions=f.code_regions,
        per_vcpu_stop=f.per_vcpu_stop,
    )


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _part_key(f: Path) -> tuple[int, str]:
    m = PART_RE.match(f.name)
    return (int(m.group(1)) if m else 1 << 62, f.name)


def _parquet_files(d: Path) -> list[Path]:
    return sorted((f for f in d.iterdir() if f.is_file() and f.name.endswith(".parquet")
                   and not f.name.startswith((".", "_"))), key=_part_key)


def list_runs(path: str | os.PathLike[str]) -> list[str]:
    """The run ids of a directory of ``run=<id>`` datasets."""
    p = Path(os.fspath(path))
    if not p.is_dir():
        return []
    return sorted(m.group(1) for d in p.iterdir() if d.is_dir() and (m := RUN_RE.match(d.name)))


def _files_for(p: Path, run: str | None) -> list[Path]:
    if not p.exists():
        raise TraceFileError(f"{p}: no such file or directory")
    if p.is_file():
        if run is not None:
            raise TraceFileError(f"{p} is a single trace file; run={run!r} applies to a directory of runs")
        return [p]
    if not p.is_dir():
        raise TraceFileError(f"{p} is neither a Parquet file nor a dataset directory")
    try:
        files = _parquet_files(p)
        runs = list_runs(p)
    except OSError as e:
        raise TraceFileError(f"cannot list {p}: {_why(e)}") from e
    if run is not None:
        if f"run={run}" not in {d.name for d in p.iterdir()}:
            known = ", ".join(runs) or "none"
            raise TraceFileError(f"{p} has no run {run!r} (runs: {known})")
        return _files_for(p / f"run={run}", None)
    if files:
        return files
    if len(runs) == 1:
        return _files_for(p / f"run={runs[0]}", None)
    if runs:
        shown = ", ".join(runs[:8]) + (", ..." if len(runs) > 8 else "")
        raise TraceFileError(
            f"{p} holds {len(runs)} runs ({shown}): pick one with run=<id> (CLI: --run), read them all with "
            f"kvmtrace.export.read_runs, or query them together with DuckDB read_parquet('{p}/**/*.parquet', "
            f"hive_partitioning=true)"
        )
    raise TraceFileError(f"{p} holds no trace: no part-*.parquet files and no run=<id> directories")


def _open_part(pq: Any, f: Path) -> tuple[Any, dict[str, Any] | None]:
    try:
        with pq.ParquetFile(f) as pf:  # a plain file read: no hive-partition discovery from the path
            table = pf.read()
    except OSError as e:
        if isinstance(e, (PermissionError, IsADirectoryError, FileNotFoundError)):
            raise TraceFileError(f"cannot read {f}: {_why(e)}") from e
        raise TraceFileError(f"{f} is not a readable Parquet file (truncated, corrupt or another format): {e}") from e
    except Exception as e:  # pyarrow.ArrowInvalid and friends
        raise TraceFileError(f"{f} is not a readable Parquet file (truncated, corrupt or another format): {e}") from e
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = None
    if raw is not None:
        try:
            meta = _loads(raw)
        except ValueError as e:
            raise TraceFileError(f"{f}: the kvmtrace metadata is not valid JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise TraceFileError(f"{f}: the 'kvmtrace' metadata is not a kvmtrace trace description")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise TraceFileError(f"{f} was written by a newer kvmtrace (format {meta.get('format_version')}); "
                                 f"upgrade kvmtrace to read it")
    return table, meta


def _columns_of(pa: Any, table: Any, f: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    names = table.schema.names
    missing = [c for c in ("pc", "dr6", "dr7", "exception") if c not in names]
    if missing:
        raise TraceFileError(f"{f} is a Parquet file but not a kvmtrace trace: column(s) {', '.join(missing)} "
                             f"missing (it has {', '.join(names[:12]) or 'no columns'})")
    cols, regs, ignored = {}, {}, []
    for field in table.schema:
        name = field.name
        is_reg = (field.metadata or {}).get(b"kvmtrace.kind") == b"register" or name in GP_REGISTERS
        if name not in DTYPES and not is_reg:
            ignored.append(name)
            continue
        target = np.dtype(DTYPES.get(name, np.uint64))
        if not pa.types.is_integer(field.type):
            raise TraceFileError(f"{f}: column {name!r} has type {field.type}; a trace needs integers ({target})")
        col = table.column(name)
        if col.null_count:
            raise TraceFileError(f"{f}: column {name!r} has {col.null_count} null values")
        try:
            col = col.cast(pa.from_numpy_dtype(target))  # safe cast: fails on negative or too-large values
        except Exception as e:
            raise TraceFileError(f"{f}: column {name!r} does not fit {target}: {e}") from e
        arr = col.combine_chunks().to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy()
        (cols if name in DTYPES else regs)[name] = arr
    return cols, regs, ignored


def _restore(meta: dict[str, Any], key: str, default: Any) -> Any:
    v = meta.get(key)
    return default if v is None else v


def read_trace(path: str | os.PathLike[str], *, run: str | None = None) -> Trace:
    """Read a trace from a Parquet file, a dataset directory of parts, or one run of a directory of runs.

    Returns a :class:`kvmtrace.Trace` with the stored run facts (mode, debug
    configuration, stop reason and detail, console, counts, code regions); file facts
    (host, KVM caps, version, symbols, source) are in ``trace.metadata``. Raises
    TraceFileError saying what is wrong with a missing, foreign or corrupt file.
    """
    pa, pq = _pa(), _pq()
    p = Path(os.fspath(path))
    files = _files_for(p, run)
    col_parts: dict[str, list[np.ndarray]] = {}
    reg_parts: dict[str, list[np.ndarray]] = {}
    reg_names: list[str] | None = None
    metas: list[tuple[Path, dict[str, Any] | None]] = []
    ignored: set[str] = set()
    for f in files:
        table, meta = _open_part(pq, f)
        cols, regs, ign = _columns_of(pa, table, f)
        ignored.update(ign)
        metas.append((f, meta))
        if not table.num_rows:
            if reg_names is None:
                reg_names = list(regs)
            continue
        if reg_names is None or not col_parts:
            reg_names = list(regs)
        elif list(regs) != reg_names:
            raise TraceFileError(f"{f} has register columns {list(regs)}, earlier parts have {reg_names}: "
                                 f"the directory mixes different traces")
        for k, v in cols.items():
            col_parts.setdefault(k, []).append(v)
        for k, v in regs.items():
            reg_parts.setdefault(k, []).append(v)
    if not col_parts:  # only empty parts: keep their (empty) columns
        table, _ = _open_part(pq, files[-1])
        c, r, _ = _columns_of(pa, table, files[-1])
        col_parts = {k: [v] for k, v in c.items()}
        reg_parts = {k: [v] for k, v in r.items()}

    uuids = {m.get("run_uuid") for _, m in metas if m and m.get("run_uuid")}
    if len(uuids) > 1:
        raise TraceFileError(f"{p} mixes parts of {len(uuids)} different runs: keep one run per directory "
                             f"(e.g. root/run=<id>/)")
    finals = [m for _, m in metas if m and m.get("final")]
    info: dict[str, Any] = finals[-1] if finals else next((m for _, m in reversed(metas) if m), {})
    n = sum(len(a) for a in col_parts.get("pc", []))
    cols = {k: (np.concatenate(v) if len(v) != 1 else v[0]) for k, v in col_parts.items()}
    regs = {k: (np.concatenate(v) if len(v) != 1 else v[0]) for k, v in reg_parts.items()}
    if "vcpu" in cols and n and info.get("vcpus") is None:
        info = {**info, "vcpus": int(cols["vcpu"].max()) + 1}
    if not finals and n and "time_ns" in cols:  # no run facts: the events' own clock bounds the run
        info = {**info, "start_ns": int(cols["time_ns"].min()), "end_ns": int(cols["time_ns"].max())}

    indices = [int(m["part"]) for _, m in metas if m and "part" in m]
    missing = sorted(set(range(max(indices) + 1)) - set(indices)) if indices else []
    complete = bool(finals) and not missing
    stop_reason = info.get("stop_reason") if finals else "unknown"
    stop_detail = dict(info.get("stop_detail") or {}) if finals else {}
    if not finals:
        if any(metas_m for _, metas_m in metas):
            stop_detail["message"] = (f"the run did not finish writing {p} (no final part; killed or still "
                                      f"running): {n} rows in {len(files)} part(s)")
        else:
            stop_detail["message"] = f"{p} carries no kvmtrace metadata: the run facts are unknown"
    if missing:
        stop_detail["missing_parts"] = missing

    code_regions = _regions_from_json(info.get("code_regions"))
    if not code_regions:
        for _, m in metas:
            if m and m.get("code_regions"):
                code_regions = _regions_from_json(m["code_regions"])
                break
    debug = None
    if info.get("debug"):
        try:
            debug = _core.GuestDebug.from_dict(info["debug"])
        except Exception as e:
            raise TraceFileError(f"{p}: the stored debug configuration is invalid ({e})") from e

    md: dict[str, Any] = dict(info.get("metadata") or {})
    for k in ("kvmtrace_version", "created", "host", "host_caps", "run_id", "run_uuid", "symbols", "entry"):
        if info.get(k) is not None:
            md[k] = info[k]
    md["source"] = {"path": str(p), "files": [str(f) for f, _ in metas], "parts": len(files), "complete": complete,
                    "missing_parts": missing, "has_metadata": any(m for _, m in metas)}
    if ignored:
        md["source"]["ignored_columns"] = sorted(ignored)
    try:
        return Trace.from_columns(
            cols, mode=_restore(info, "mode", "long"), registers=regs, metadata=md,
            stop_reason=str(stop_reason or "unknown"), stop_detail=stop_detail,
            console=_restore(info, "console", b"") if finals else b"",
            start_ns=int(_restore(info, "start_ns", 0)), end_ns=int(_restore(info, "end_ns", 0)),
            event_count=int(info["event_count"]) if finals and info.get("event_count") is not None else n,
            exits=int(_restore(info, "exits", 0)), vcpus=int(_restore(info, "vcpus", 1)), debug=debug,
            code_regions=code_regions, per_vcpu_stop=list(info.get("per_vcpu_stop") or []),
        )
    except Exception as e:
        if isinstance(e, TraceFileError):
            raise
        raise TraceFileError(f"{p}: the stored trace is inconsistent: {e}") from e


def read_runs(path: str | os.PathLike[str]) -> dict[str, Trace]:
    """Every run of a directory of ``run=<id>`` datasets, by id."""
    p = Path(os.fspath(path))
    runs = list_runs(p)
    if not runs:
        raise TraceFileError(f"{p} holds no run=<id> directories")
    return {r: read_trace(p, run=r) for r in runs}


def to_perfetto(trace: Any, path: str | os.PathLike[str], program: Any = None, **kw: Any) -> dict[str, Any]:
    """Chrome trace JSON for ui.perfetto.dev (see :func:`kvmtrace.perfetto.to_perfetto`)."""
    from kvmtrace.perfetto import to_perfetto as _to_perfetto

    return _to_perfetto(trace, path, program, **kw)
