"""Traces as columns: the Arrow schema, zero-copy Arrow tables, the stored run facts
and Parquet writing (files and streaming datasets).

This layer works on anything shaped like a trace (``kvmtrace.Trace`` or the
``_core.Trace`` chunks a sink receives) and never imports the ``Trace`` class, so
``kvmtrace.trace`` builds on it; reading stored traces back into ``Trace`` objects is
the layer above (:mod:`kvmtrace.export`).
"""

from __future__ import annotations

from kvmtrace.columnar.arrow import arrow_c_schema, arrow_c_stream, to_arrow
from kvmtrace.columnar.metadata import FORMAT, FORMAT_VERSION, META_KEY, host_facts
from kvmtrace.columnar.parquet import write_parquet
from kvmtrace.columnar.schema import COLUMNS, DTYPES, arrow_schema
from kvmtrace.columnar.sink import ParquetSink

__all__ = [
    "COLUMNS",
    "DTYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "META_KEY",
    "ParquetSink",
    "arrow_c_schema",
    "arrow_c_stream",
    "arrow_schema",
    "host_facts",
    "to_arrow",
    "write_parquet",
]
