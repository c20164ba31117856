"""Writing a finished trace as one Parquet file or a one-part dataset."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvmtrace.columnar.files import why, write_atomically
from kvmtrace.columnar.metadata import META_KEY, dumps, trace_meta
from kvmtrace.columnar.schema import pq, table
from kvmtrace.columnar.sink import ParquetSink
from kvmtrace.exceptions import TraceFileError


def write_parquet(trace: Any, path: str | os.PathLike[str], *, dataset: bool = False, machine: Any = None,
                  program: Any = None, host_caps: Mapping[str, Any] | None = None, compression: str = "zstd",
                  compression_level: int | None = None, row_group_size: int = 1 << 20,
                  overwrite: bool = True, run_id: str | None = None) -> Path:
    """Write an in-memory trace as one Parquet file (or, with ``dataset=True`` or an
    existing directory at ``path``, as a dataset directory with one final part).

    ``program`` (or ``machine.program``) stores the symbol table so later exports can
    name functions; ``machine`` also records its KVM capabilities. Returns the path.
    """
    t = trace
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
    meta = trace_meta(t, final=True, program=program, machine=machine, host_caps=host_caps)
    tab = table(t, {META_KEY: dumps(meta)})
    try:
        write_atomically(pq(), tab, p, p.with_name(f".{p.name}.tmp"), compression=compression,
                          compression_level=compression_level, row_group_size=row_group_size)
    except OSError as e:
        raise TraceFileError(f"cannot write {p}: {why(e)}") from e
    return p

