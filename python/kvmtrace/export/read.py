"""Reading stored traces back into :class:`kvmtrace.Trace` objects.

:func:`read_trace` reads a file, a dataset directory, or one run of a directory of
``run=<id>`` datasets. A dataset without a final part (a killed run) still reads,
with stop reason ``unknown``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import kvmtrace._core as _core
from kvmtrace.columnar.metadata import regions_from_json
from kvmtrace.columnar.schema import COLUMNS, column, optional_columns, pa, pq
from kvmtrace.exceptions import TraceFileError
from kvmtrace.export.locate import files_for, list_runs
from kvmtrace.export.part import columns_of, open_part
from kvmtrace.trace import Trace

#: Run facts that go to Trace.metadata (file facts), not to the Trace's own fields.
_FILE_FACTS = ("kvmtrace_version", "created", "host", "host_caps", "run_id", "run_uuid", "symbols", "entry")


@dataclass
class _Parts:
    """The columns and run facts of every part of one stored trace, in order."""

    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)
    regs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    metas: list[tuple[Path, dict[str, Any] | None]] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)

    def joined(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        def cat(v: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(v) if len(v) != 1 else v[0]

        return {k: cat(v) for k, v in self.cols.items()}, {k: cat(v) for k, v in self.regs.items()}


def _read_parts(files: Sequence[Path]) -> _Parts:
    p_a, p_q = pa(), pq()
    out = _Parts()
    reg_names: list[str] | None = None
    for f in files:
        table, meta = open_part(p_q, f)
        cols, regs, ign = columns_of(p_a, table, f)
        out.ignored.update(ign)
        out.metas.append((f, meta))
        if not table.num_rows:
            if reg_names is None:
                reg_names = list(regs)
            continue
        if reg_names is None or not out.cols:
            reg_names = list(regs)
        elif list(regs) != reg_names:
            raise TraceFileError(f"{f} has register columns {list(regs)}, earlier parts have {reg_names}: "
                                 f"the directory mixes different traces")
        for k, v in cols.items():
            out.cols.setdefault(k, []).append(v)
        for k, v in regs.items():
            out.regs.setdefault(k, []).append(v)
    if not out.cols:  # only empty parts: keep their (empty) columns
        table, _ = open_part(p_q, files[-1])
        c, r, _ = columns_of(p_a, table, files[-1])
        out.cols = {k: [v] for k, v in c.items()}
        out.regs = {k: [v] for k, v in r.items()}
    return out


def _run_info(p: Path, parts: _Parts, cols: dict[str, np.ndarray]) -> tuple[dict[str, Any], bool]:
    """The run facts (the final part's, else the last part's) and whether the run finished."""
    uuids = {m.get("run_uuid") for _, m in parts.metas if m and m.get("run_uuid")}
    if len(uuids) > 1:
        raise TraceFileError(f"{p} mixes parts of {len(uuids)} different runs: keep one run per directory "
                             f"(e.g. root/run=<id>/)")
    finals = [m for _, m in parts.metas if m and m.get("final")]
    info: dict[str, Any] = finals[-1] if finals else next((m for _, m in reversed(parts.metas) if m), {})
    n = len(cols.get("pc", ()))
    if "vcpu" in cols and n and info.get("vcpus") is None:
        info = {**info, "vcpus": int(cols["vcpu"].max()) + 1}
    if not finals and n and "time_ns" in cols:  # no run facts: the events' own clock bounds the run
        info = {**info, "start_ns": int(cols["time_ns"].min()), "end_ns": int(cols["time_ns"].max())}
    return info, bool(finals)


def _missing_parts(parts: _Parts) -> list[int]:
    indices = [int(m["part"]) for _, m in parts.metas if m and "part" in m]
    return sorted(set(range(max(indices) + 1)) - set(indices)) if indices else []


def _stop(p: Path, info: dict[str, Any], final: bool, n: int, parts: _Parts,
          missing: list[int]) -> tuple[str, dict[str, Any]]:
    """Stop reason and detail; a run that did not finish says why."""
    detail: dict[str, Any]
    if final:
        reason, detail = str(info.get("stop_reason") or "unknown"), dict(info.get("stop_detail") or {})
    elif any(m for _, m in parts.metas):
        reason, detail = "unknown", {"message": f"the run did not finish writing {p} (no final part; killed or "
                                                f"still running): {n} rows in {len(parts.metas)} part(s)"}
    else:
        reason, detail = "unknown", {"message": f"{p} carries no kvmtrace metadata: the run facts are unknown"}
    if missing:
        detail["missing_parts"] = missing
    return reason, detail


def _code_regions(info: dict[str, Any], parts: _Parts) -> list[tuple[int, bytes]]:
    regions = regions_from_json(info.get("code_regions"))
    if not regions:
        regions = next((regions_from_json(m["code_regions"]) for _, m in parts.metas if m and m.get("code_regions")),
                       [])
    return regions


def _metadata(p: Path, info: dict[str, Any], parts: _Parts, complete: bool, missing: list[int]) -> dict[str, Any]:
    md: dict[str, Any] = dict(info.get("metadata") or {})
    md.update({k: info[k] for k in _FILE_FACTS if info.get(k) is not None})
    md["source"] = {"path": str(p), "files": [str(f) for f, _ in parts.metas], "parts": len(parts.metas),
                    "complete": complete, "missing_parts": missing, "has_metadata": any(m for _, m in parts.metas)}
    if parts.ignored:
        md["source"]["ignored_columns"] = sorted(parts.ignored)
    return md


def _debug(p: Path, info: dict[str, Any]) -> Any:
    if not info.get("debug"):
        return None
    try:
        return _core.GuestDebug.from_dict(info["debug"])
    except Exception as e:
        raise TraceFileError(f"{p}: the stored debug configuration is invalid ({e})") from e


def _fact(info: dict[str, Any], key: str, default: Any) -> Any:
    v = info.get(key)
    return default if v is None else v


def read_trace(path: str | os.PathLike[str], *, run: str | None = None) -> Trace:
    """Read a trace from a Parquet file, a dataset directory of parts, or one run of a directory of runs.

    Returns a :class:`kvmtrace.Trace` with the stored run facts (mode, debug
    configuration, stop reason and detail, console, counts, code regions); file facts
    (host, KVM caps, version, symbols, source) are in ``trace.metadata``. Raises
    TraceFileError saying what is wrong with a missing, foreign or corrupt file.
    """
    p = Path(os.fspath(path))
    parts = _read_parts(files_for(p, run))
    cols, regs = parts.joined()
    n = len(cols.get("pc", ()))
    info, final = _run_info(p, parts, cols)
    missing = _missing_parts(parts)
    stop_reason, stop_detail = _stop(p, info, final, n, parts, missing)
    try:
        return Trace.from_columns(
            cols, mode=_fact(info, "mode", "long"), registers=regs,
            metadata=_metadata(p, info, parts, final and not missing, missing),
            stop_reason=stop_reason, stop_detail=stop_detail,
            console=_fact(info, "console", b"") if final else b"",
            start_ns=int(_fact(info, "start_ns", 0)), end_ns=int(_fact(info, "end_ns", 0)),
            event_count=int(info["event_count"]) if final and info.get("event_count") is not None else n,
            exits=int(_fact(info, "exits", 0)), vcpus=int(_fact(info, "vcpus", 1)), debug=_debug(p, info),
            code_regions=_code_regions(info, parts), per_vcpu_stop=list(info.get("per_vcpu_stop") or []),
            dropped_events=int(_fact(info, "dropped_events", 0)), hits=list(info.get("hits") or []),
            windows=int(_fact(info, "windows", 0)), window=info.get("window") or None,
        )
    except TraceFileError:
        raise
    except Exception as e:
        raise TraceFileError(f"{p}: the stored trace is inconsistent: {e}") from e


def read_runs(path: str | os.PathLike[str]) -> dict[str, Trace]:
    """Every run of a directory of ``run=<id>`` datasets, by id."""
    p = Path(os.fspath(path))
    runs = list_runs(p)
    if not runs:
        raise TraceFileError(f"{p} holds no run=<id> directories")
    return {r: read_trace(p, run=r) for r in runs}


def concat_traces(chunks: Sequence[Any], final: Any = None) -> Trace:
    """One Trace from sink chunks plus the final (tail) trace, with the final trace's run facts (copies).

    Without ``final`` the facts are the last chunk's (a bigger chunk for a sink).
    """
    if final is None:
        if not chunks:
            raise ValueError("concat_traces needs at least one chunk or a final trace")
        chunks, final = chunks[:-1], chunks[-1]
    parts = [c for c in chunks if len(c)] + [final]
    names = [*COLUMNS, *optional_columns(final)]
    cols = {n: np.concatenate([column(p, n) for p in parts]) for n in names}
    regs = {n: np.concatenate([column(p, n) for p in parts]) for n in final.register_names}
    return Trace.from_columns(
        cols, mode=final.mode, registers=regs, metadata=getattr(final, "metadata", None),
        stop_reason=str(final.stop_reason), stop_detail=final.stop_detail, console=final.console,
        start_ns=final.start_ns, end_ns=final.end_ns, event_count=final.event_count, exits=final.exits,
        vcpus=final.vcpus, debug=final.debug, code_regions=final.code_regions, per_vcpu_stop=final.per_vcpu_stop,
        dropped_events=final.dropped_events, hits=list(final.hits), windows=final.windows, window=final.window_spec,
    )
