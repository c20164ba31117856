"""The trace schema as Arrow sees it, and access to the columns of any trace.

The column names and dtypes are defined once, in the Rust core (``_core.COLUMNS``).
Functions here take anything shaped like a trace: a ``kvmtrace.Trace`` or the
``_core.Trace`` chunks a sink receives (same column attributes), so this layer
never needs the ``Trace`` class and ``kvmtrace.trace`` can build on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import kvmtrace._core as _core

#: The fixed columns of every trace, in order.
COLUMNS: tuple[str, ...] = tuple(name for name, _ in _core.COLUMNS)
#: Columns present only when the run used the feature (``window``), after the fixed ones.
OPTIONAL: tuple[str, ...] = tuple(name for name, _ in _core.OPTIONAL_COLUMNS)
#: The numpy dtype of every named column, fixed and optional.
DTYPES: dict[str, np.dtype[Any]] = {name: np.dtype(dtype) for name, dtype in (*_core.COLUMNS,
                                                                              *_core.OPTIONAL_COLUMNS)}
#: Field metadata that marks a register column.
REGISTER_KIND = {b"kvmtrace.kind": b"register"}


def pa() -> Any:
    """pyarrow (an optional dependency), or ImportError saying how to install it."""
    try:
        import pyarrow
    except ImportError:
        raise ImportError("Arrow/Parquet export needs pyarrow: pip install 'kvmtrace[arrow]'", name="pyarrow") from None
    return pyarrow


def pq() -> Any:
    """pyarrow.parquet (see :func:`pa`)."""
    pa()
    import pyarrow.parquet

    return pyarrow.parquet


def column(trace: Any, name: str) -> np.ndarray:
    """Column ``name`` of a trace-like object: a fixed or optional column, or a register."""
    if name in DTYPES:
        return getattr(trace, name)
    return trace.registers[name]


def optional_columns(trace: Any) -> list[str]:
    """The optional columns ``trace`` has (``window`` when it ran with windows)."""
    return [n for n in OPTIONAL if getattr(trace, n, None) is not None]


def arrow_schema(register_names: Sequence[str] = (), metadata: Mapping[bytes, bytes] | None = None,
                 optional: Sequence[str] = ()) -> Any:
    """The Arrow schema of a trace with these optional and register columns."""
    p = pa()
    fields = [p.field(n, getattr(p, DTYPES[n].name)(), nullable=False) for n in (*COLUMNS, *optional)]
    fields += [p.field(r, p.uint64(), nullable=False, metadata=REGISTER_KIND) for r in register_names]
    return p.schema(fields, metadata=metadata)


def zero_copy(p: Any, arr: np.ndarray, typ: Any) -> Any:
    """An Arrow array over ``arr``'s memory (the array keeps ``arr``, and so the trace, alive)."""
    if not arr.flags.c_contiguous:  # never the case for trace columns; kept for safety
        arr = np.ascontiguousarray(arr)
    return p.Array.from_buffers(typ, len(arr), [None, p.py_buffer(arr)], null_count=0)


def table(trace: Any, metadata: Mapping[bytes, bytes] | None = None) -> Any:
    """The trace's columns as a ``pyarrow.Table`` sharing their memory (no copy)."""
    p = pa()
    schema = arrow_schema(trace.register_names, metadata, optional_columns(trace))
    return p.Table.from_arrays([zero_copy(p, column(trace, f.name), f.type) for f in schema], schema=schema)
