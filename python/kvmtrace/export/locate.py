"""Finding a stored trace's files: a Parquet file, a dataset directory of parts, or
one run of a directory of ``run=<id>`` datasets."""

from __future__ import annotations

import os
from pathlib import Path

from kvmtrace.columnar.files import PART_RE, RUN_RE, why
from kvmtrace.exceptions import TraceFileError


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


def files_for(p: Path, run: str | None) -> list[Path]:
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
        raise TraceFileError(f"cannot list {p}: {why(e)}") from e
    if run is not None:
        if f"run={run}" not in {d.name for d in p.iterdir()}:
            known = ", ".join(runs) or "none"
            raise TraceFileError(f"{p} has no run {run!r} (runs: {known})")
        return files_for(p / f"run={run}", None)
    if files:
        return files
    if len(runs) == 1:
        return files_for(p / f"run={runs[0]}", None)
    if runs:
        shown = ", ".join(runs[:8]) + (", ..." if len(runs) > 8 else "")
        raise TraceFileError(
            f"{p} holds {len(runs)} runs ({shown}): pick one with run=<id> (CLI: --run), read them all with "
            f"kvmtrace.export.read_runs, or query them together with DuckDB read_parquet('{p}/**/*.parquet', "
            f"hive_partitioning=true)"
        )
    raise TraceFileError(f"{p} holds no trace: no part-*.parquet files and no run=<id> directories")

