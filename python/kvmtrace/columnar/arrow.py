"""Arrow views of a trace: a zero-copy ``pyarrow.Table`` and the PyCapsule interface
(``pyarrow.table(trace)``, ``polars.DataFrame(trace)``, DuckDB read a trace directly)."""

from __future__ import annotations

from typing import Any

from kvmtrace.columnar.metadata import META_KEY, dumps, trace_meta
from kvmtrace.columnar.schema import arrow_schema, optional_columns, pa, table


def to_arrow(trace: Any, *, metadata: bool = True) -> Any:
    """The trace as a ``pyarrow.Table`` sharing the column memory (no copy).

    With ``metadata`` the schema carries the run facts under the key ``kvmtrace``
    (so ``pyarrow.parquet.write_table(trace.to_arrow(), f)`` writes a file that
    :func:`kvmtrace.read_trace` restores fully).
    """
    md = {META_KEY: dumps(trace_meta(trace, final=True))} if metadata else None
    return table(trace, md)


def _import_schema(pa: Any, capsule: Any) -> Any:
    class _Holder:
        def __arrow_c_schema__(self) -> Any:
            return capsule

    return pa.schema(_Holder())


def arrow_c_stream(trace: Any, requested_schema: Any = None) -> Any:
    """``__arrow_c_stream__``: one record batch; cast to ``requested_schema`` when castable, else as is."""
    p = pa()
    t = to_arrow(trace)
    if requested_schema is not None:
        try:
            target = _import_schema(p, requested_schema)
            t = t.select(target.names).cast(target)
        except Exception:  # not castable: the consumer gets the native schema (PyCapsule protocol)
            pass
    return t.__arrow_c_stream__()


def arrow_c_schema(trace: Any) -> Any:
    return arrow_schema(trace.register_names, optional=optional_columns(trace)).__arrow_c_schema__()
