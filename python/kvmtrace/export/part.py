"""Reading one stored part: its table, its run facts and its columns, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import kvmtrace._core as _core
from kvmtrace.columnar.files import why
from kvmtrace.columnar.metadata import FORMAT, FORMAT_VERSION, META_KEY, loads
from kvmtrace.columnar.schema import DTYPES
from kvmtrace.exceptions import TraceFileError


def open_part(pq: Any, f: Path) -> tuple[Any, dict[str, Any] | None]:
    try:
        with pq.ParquetFile(f) as pf:  # a plain file read: no hive-partition discovery from the path
            table = pf.read()
    except OSError as e:
        if isinstance(e, (PermissionError, IsADirectoryError, FileNotFoundError)):
            raise TraceFileError(f"cannot read {f}: {why(e)}") from e
        raise TraceFileError(f"{f} is not a readable Parquet file (truncated, corrupt or another format): {e}") from e
    except Exception as e:  # pyarrow.ArrowInvalid and friends
        raise TraceFileError(f"{f} is not a readable Parquet file (truncated, corrupt or another format): {e}") from e
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = None
    if raw is not None:
        try:
            meta = loads(raw)
        except ValueError as e:
            raise TraceFileError(f"{f}: the kvmtrace metadata is not valid JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise TraceFileError(f"{f}: the 'kvmtrace' metadata is not a kvmtrace trace description")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise TraceFileError(f"{f} was written by a newer kvmtrace (format {meta.get('format_version')}); "
                                 f"upgrade kvmtrace to read it")
    return table, meta


def columns_of(pa: Any, table: Any, f: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    names = table.schema.names
    missing = [c for c in ("pc", "dr6", "dr7", "exception") if c not in names]
    if missing:
        raise TraceFileError(f"{f} is a Parquet file but not a kvmtrace trace: column(s) {', '.join(missing)} "
                             f"missing (it has {', '.join(names[:12]) or 'no columns'})")
    cols, regs, ignored = {}, {}, []
    for field in table.schema:
        name = field.name
        is_reg = (field.metadata or {}).get(b"kvmtrace.kind") == b"register" or name in _core.GP_REGISTERS
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
