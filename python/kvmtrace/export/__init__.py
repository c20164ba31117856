"""Trace export and storage: Arrow (zero-copy), streaming Parquet datasets, reading traces back.

Arrow
    :func:`to_arrow` builds a ``pyarrow.Table`` whose buffers are the trace's numpy
    column views (no copy). ``Trace`` implements the Arrow PyCapsule interface on top
    of it, so ``pyarrow.table(trace)``, ``polars.DataFrame(trace)`` and DuckDB
    (``duckdb.sql("select ... from trace")``) read a trace directly.

    Schema: ``seq`` uint64, ``vcpu`` uint16, ``time_ns`` uint64, ``exception`` uint8,
    ``pc`` uint64, ``dr6`` uint64, ``dr7`` uint64, then ``window`` int32 in a trace
    recorded with windows (the row's window index per vCPU, -1 outside), then one
    uint64 column per captured register under its plain name (``rip``, ``rsp``, ...; field metadata
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
    ``console`` (base64), ``event_count``, ``exits``, ``start_ns``, ``end_ns``,
    ``dropped_events`` (a ring's overwritten rows), ``hits`` (per breakpoint),
    ``windows`` and ``window`` (the resolved window) and the trace's free ``metadata``. Bytes inside JSON values are ``{"$bytes": base64}``.

:func:`read_trace` reads any of these back (a file, a dataset directory, or a
directory of ``run=<id>`` datasets) into a :class:`kvmtrace.Trace`. A dataset without
a final part (a killed run) still reads, with stop reason ``unknown``.
"""

from __future__ import annotations

from kvmtrace.columnar import (
    FORMAT,
    FORMAT_VERSION,
    META_KEY,
    ParquetSink,
    arrow_c_schema,
    arrow_c_stream,
    arrow_schema,
    host_facts,
    to_arrow,
    write_parquet,
)
from kvmtrace.export.locate import list_runs
from kvmtrace.export.read import concat_traces, read_runs, read_trace
from kvmtrace.perfetto import to_perfetto

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_KEY",
    "ParquetSink",
    "arrow_c_schema",
    "arrow_c_stream",
    "arrow_schema",
    "concat_traces",
    "host_facts",
    "list_runs",
    "read_runs",
    "read_trace",
    "to_arrow",
    "to_perfetto",
    "write_parquet",
]
