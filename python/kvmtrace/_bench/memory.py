"""Memory: bytes per event in memory, and peak RSS of a streamed run measured in a
fresh process (so the peak is that run's alone)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kvmtrace
from kvmtrace._bench.guests import LOAD_ADDR, MEMORY_SIZE, STEP_LOOP
from kvmtrace._bench.measure import BenchCheckError

RSS_LIMIT_BYTES = 300 << 20
#: Rows the flight-recorder runs keep ("ring" kind): the last million events.
RING_ROWS = 1_000_000
"""Peak process RSS allowed while streaming a trace to a sink, whatever the event count."""


class NullSink:
    """A trace sink that drops every chunk: the engine's own streaming memory, without a writer."""

    def __init__(self) -> None:
        self.rows = 0
        self.chunks = 0

    def write(self, chunk: Any) -> None:
        self.rows += len(chunk)
        self.chunks += 1

    def close(self, trace: Any) -> None:
        pass


def parquet_missing() -> str | None:
    """None if the streaming Parquet sink (kvmtrace.export.ParquetSink) is available, else why not."""
    try:
        from kvmtrace.export import ParquetSink  # noqa: F401
    except ImportError as e:
        return f"kvmtrace.export.ParquetSink is not importable ({e})"
    return None


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_child(events: int, kind: str, path: str | None = None, sink_rows: int | None = None,
              registers: Sequence[str] = ()) -> dict[str, Any]:
    """In a fresh process: single-step STEP_LOOP for ``events`` exits and report memory.

    ``kind``: "memory" (no sink: rows kept in memory), "null" (:class:`NullSink`),
    "parquet" (``sink=path``) or "ring" (a ring of RING_ROWS rows, no sink). Peak
    RSS is VmHWM of this process.
    """
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(STEP_LOOP, LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        rss_before = _proc_status_kib("VmRSS")
        sink: Any = None
        if kind == "null":
            sink = NullSink()
        elif kind == "parquet":
            if not path:
                raise ValueError("parquet needs a path")
            sink = path
        elif kind not in ("memory", "ring"):
            raise ValueError(f"unknown kind {kind!r}")
        ring = RING_ROWS if kind == "ring" else None
        # A ring's max_events counts every event recorded (kept or overwritten).
        t = m.trace(kvmtrace.GuestDebug(single_step=True), max_events=events, sink=sink,
                    sink_rows=sink_rows, registers=tuple(registers), ring=ring)
    out = {
        "events": t.event_count,
        "rows_in_memory": len(t),
        "stop": str(t.stop_reason),
        "seconds": t.elapsed_s,
        "events_per_s": t.events_per_s,
        "rss_before_kib": rss_before,
        "vm_hwm_kib": _proc_status_kib("VmHWM"),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "memory_bytes": t.memory_bytes,
        "dropped_events": t.dropped_events,
    }
    if kind == "parquet" and path:
        out["file_bytes"] = _tree_size(Path(path))
    return out


def _tree_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def measure_rss(events: int, kind: str, path: str | os.PathLike[str] | None = None, *,
                sink_rows: int | None = None, registers: Sequence[str] = (),
                timeout: float | None = None) -> dict[str, Any]:
    """Run :func:`rss_child` in a subprocess (so peak RSS is that run's alone) and return its report."""
    args = {"events": int(events), "kind": kind, "path": os.fspath(path) if path else None, "sink_rows": sink_rows,
            "registers": list(registers)}
    code = (
        "import json, sys\n"
        "from kvmtrace._bench.memory import rss_child\n"
        "print('KVMTRACE-RSS ' + json.dumps(rss_child(**json.loads(sys.argv[1]))))\n"
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("KVMTRACE-RSS "):
            r: dict[str, Any] = json.loads(line[len("KVMTRACE-RSS "):])
            # VmHWM is this mm's own peak. ru_maxrss is not used: Linux carries the
            # pre-exec peak (the forked copy of the parent) into it.
            r["peak_rss_bytes"] = (r.get("vm_hwm_kib") or r.get("ru_maxrss_kib") or 0) * 1024
            return r
    raise BenchCheckError(f"RSS child ({kind}, {events} events) failed with exit code {proc.returncode}:\n"
                          f"{proc.stderr.strip()[-2000:]}")
