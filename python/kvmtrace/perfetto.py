"""Export a trace as Chrome trace JSON (opens in ui.perfetto.dev and chrome://tracing).

* One track (thread) per vCPU in one process; timestamps are ``trace.time_ns``
  relative to the first event, in microseconds.
* Breakpoint hits are instant events (``ph: "i"``): in a trace without single-step
  every event, in a single-step trace the events with a B0-B3/BD bit in DR6 or a
  vector other than #DB. Their ``args`` hold seq, pc, symbol, dr6 (with its causes)
  and dr7.
* Single-step traces become function slices (``ph: "X"``): the instruction executed
  before each event is the one at the vCPU's previous pc; it is decoded with iced-x86
  (bitness from ``trace.mode``, bytes from ``trace.code_regions`` and the program's
  segments). A call (or ``int n``) that transferred control opens a slice named by
  the symbol at the target and remembers the return address; a ret closes the
  innermost open slice whose return address is the new pc, with the slices above it;
  a ret that matches no open slice closes nothing. The function containing the first
  event is an outermost slice for the whole trace. Slices still open at the end close
  at the vCPU's last event.
* Without symbols, slices are named by address.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from kvmtrace._core import VECTOR_BP, VECTOR_DB, Dr6, __version__
from kvmtrace.program import Program
from kvmtrace.symbols import FLOW_CALL, FLOW_INT, FLOW_RET, Disassembler, dr6_causes, resolve_program

__all__ = ["to_perfetto", "perfetto_events"]

DR6_HITS = Dr6.B0 | Dr6.B1 | Dr6.B2 | Dr6.B3 | Dr6.BD  # a breakpoint (or general detect) fired
PID = 1


def _is_single_step(trace: Any) -> bool:
    debug = getattr(trace, "debug", None)
    if debug is not None:
        return bool(debug.single_step)
    dr6 = np.asarray(trace.dr6)
    return bool(dr6.size) and int(np.count_nonzero(dr6 & Dr6.BS)) * 2 > dr6.size


def _name(program: Program | None, pc: int, *, function: bool = False) -> str:
    if program is None:
        return f"{pc:#x}"
    if function:
        sym = program.lookup(pc)
        if sym is not None:
            return sym.name
    return program.symbolize(pc)


def _slices(pcs: np.ndarray, ts: np.ndarray, dis: Disassembler, program: Program | None,
            entry: int | None) -> list[tuple[float, float, str, int, int]]:
    """(ts, dur, name, depth, pc) of the function slices of one vCPU's single-step events."""
    out: list[tuple[float, float, str, int, int]] = []
    if pcs.size == 0:
        return out
    first = int(pcs[0])
    # frames: [name, start ts, return address (None for the outermost), entry pc]
    stack: list[list[Any]] = []
    if entry is not None:
        d = dis.decode(entry)
        if d is not None and d.flow in (FLOW_CALL, FLOW_INT) and entry + d.length != first:
            stack.append([_name(program, entry, function=True), float(ts[0]), None, entry])
            stack.append([_name(program, first), float(ts[0]), entry + d.length, first])
    if not stack:
        stack.append([_name(program, first, function=True), float(ts[0]), None, first])

    prev, cur = pcs[:-1], pcs[1:]
    kinds, lens = dis.flows(prev)
    cand = np.flatnonzero((kinds != 0) & (cur != prev))
    for j, kind, p, c, ln in zip(cand.tolist(), kinds[cand].tolist(), prev[cand].tolist(), cur[cand].tolist(),
                                 lens[cand].tolist()):
        t = float(ts[j + 1])
        if kind in (FLOW_CALL, FLOW_INT):
            ret = p + ln
            if c == ret:  # "call next" (get-pc idiom) or an int that did not transfer
                continue
            stack.append([_name(program, c), t, ret, c])
        elif kind == FLOW_RET:
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][2] == c:
                    while len(stack) > depth:
                        name, start, _, pc0 = stack.pop()
                        out.append((start, t - start, name, len(stack), pc0))
                    break
    end = float(ts[-1])
    while stack:
        name, start, _, pc0 = stack.pop()
        out.append((start, end - start, name, len(stack), pc0))
    return out


def perfetto_events(trace: Any, program: Program | None = None, *, slices: bool | None = None,
                    instants: bool = True, entry: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Chrome trace events of a trace (sorted by vCPU and time) and a summary.

    ``slices`` (default: when the trace is single-step) builds function slices;
    ``entry`` (default: the program's entry) is the pc before the first event.
    """
    program = resolve_program(trace, program)
    n = len(trace)
    single = _is_single_step(trace)
    if slices is None:
        slices = single
    if entry is None:
        md_entry = (getattr(trace, "metadata", None) or {}).get("entry")
        entry = program.entry if program is not None else (int(md_entry) if md_entry is not None else None)
    pc, vcpu, tns = np.asarray(trace.pc), np.asarray(trace.vcpu), np.asarray(trace.time_ns)
    dr6, dr7, exc, seq = np.asarray(trace.dr6), np.asarray(trace.dr7), np.asarray(trace.exception), np.asarray(trace.seq)
    t0 = int(tns.min()) if n else 0
    mode = getattr(trace, "mode", "?")
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": PID, "tid": 0,
         "args": {"name": f"kvmtrace guest ({mode} mode)"}},
    ]
    vcpus = sorted(int(v) for v in np.unique(vcpu)) if n else []
    for v in range(max(int(getattr(trace, "vcpus", 1) or 1), (vcpus[-1] + 1) if vcpus else 0)):
        events.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": v, "args": {"name": f"vCPU {v}"}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": v, "args": {"sort_index": v}})
    dis = Disassembler.for_trace(trace, program) if slices else None
    n_slices = n_instants = 0
    max_depth = 0
    for v in vcpus:
        idx = np.flatnonzero(vcpu == v) if len(vcpus) > 1 else np.arange(n)
        ts = (tns[idx].astype(np.int64) - t0) / 1000.0
        track: list[tuple[float, int, int, dict[str, Any]]] = []
        if slices and dis is not None:
            for start, dur, name, depth, pc0 in _slices(pc[idx], ts, dis, program, entry):
                track.append((start, -int(dur * 1000), depth, {
                    "name": name, "cat": "function", "ph": "X", "pid": PID, "tid": v,
                    "ts": round(start, 3), "dur": round(dur, 3), "args": {"pc": f"{pc0:#x}", "depth": depth}}))
                max_depth = max(max_depth, depth)
            n_slices += len(track)
        if instants:
            if single:
                hit = np.flatnonzero(((dr6[idx] & DR6_HITS) != 0) | (exc[idx] != VECTOR_DB))
            else:
                hit = np.arange(idx.size)
            for k in hit.tolist():
                i = int(idx[k])
                p, d6, e = int(pc[i]), int(dr6[i]), int(exc[i])
                what = "#BP" if e == VECTOR_BP else (dr6_causes(d6) if e == VECTOR_DB else f"vector {e}")
                sym = _name(program, p)
                track.append((float(ts[k]), 1, 0, {
                    "name": f"{what} {sym}", "cat": "breakpoint", "ph": "i", "s": "t", "pid": PID, "tid": v,
                    "ts": round(float(ts[k]), 3),
                    "args": {"seq": int(seq[i]), "pc": f"{p:#x}", "symbol": sym, "exception": e,
                             "dr6": f"{d6:#x}", "dr6_causes": dr6_causes(d6), "dr7": f"{int(dr7[i]):#x}"}}))
            n_instants += hit.size
        track.sort(key=lambda x: (x[0], x[1], x[2]))  # parents before children
        events.extend(e for *_, e in track)
    summary = {"events": n, "vcpus": len(vcpus), "slices": n_slices, "instants": n_instants,
               "max_depth": max_depth, "single_step": single, "symbols": program is not None}
    return events, summary


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def to_perfetto(trace: Any, path: str | os.PathLike[str], program: Program | None = None, **kw: Any) -> dict[str, Any]:
    """Write ``trace`` as Chrome trace JSON to ``path`` (gzip if it ends in .gz); returns a summary.

    ``program`` supplies symbols (default: the symbols stored with the trace).
    """
    events, summary = perfetto_events(trace, program, **kw)
    md = getattr(trace, "metadata", None) or {}
    other = {
        "tool": "kvmtrace",
        "kvmtrace_version": md.get("kvmtrace_version") or __version__,
        "mode": getattr(trace, "mode", None),
        "stop_reason": str(getattr(trace, "stop_reason", "")),
        "event_count": int(getattr(trace, "event_count", len(trace))),
        "timestamps": "time_ns relative to the first event, in microseconds",
    }
    p = Path(os.fspath(path))
    with _open(p) as f:
        f.write('{"displayTimeUnit":"ns","otherData":')
        f.write(json.dumps(other))
        f.write(',"traceEvents":[\n')
        for i, e in enumerate(events):
            if i:
                f.write(",\n")
            f.write(json.dumps(e, separators=(",", ":")))
        f.write("\n]}\n")
    summary["path"] = str(p)
    return summary
