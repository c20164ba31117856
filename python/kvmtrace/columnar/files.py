"""Files of a stored trace: atomic writes, part and run directory names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kvmtrace.exceptions import SinkError

#: A dataset's parts: part-00000.parquet, part-00001.parquet, ...
PART_RE = re.compile(r"^part-(\d+)\.parquet$")
#: A directory of runs: run=<id>/ (hive partitioning).
RUN_RE = re.compile(r"^run=(.+)$")


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def check_run_id(run_id: str) -> str:
    run_id = str(run_id)
    if not run_id or "/" in run_id or "\0" in run_id or run_id in (".", ".."):
        raise SinkError(f"invalid run_id {run_id!r}: use a non-empty name without '/'")
    return run_id


def write_atomically(pq: Any, table: Any, final: Path, tmp: Path, **kw: Any) -> None:
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

