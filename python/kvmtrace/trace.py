"""The recorded trace: typed columns (zero-copy numpy views of the Rust buffers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

import kvmtrace._core as _core
from kvmtrace.columnar.arrow import arrow_c_schema, arrow_c_stream, to_arrow
from kvmtrace.columnar.metadata import window_from_dict
from kvmtrace.columnar.parquet import write_parquet
from kvmtrace.columnar.schema import COLUMNS, DTYPES, optional_columns
from kvmtrace.perfetto import to_perfetto

StopReason = _core.StopReason


class Event(NamedTuple):
    """One row of a trace."""

    seq: int
    vcpu: int
    time_ns: int
    exception: int
    pc: int
    dr6: int
    dr7: int
    registers: dict[str, int]

    def __repr__(self) -> str:
        regs = "".join(f", {k}={v:#x}" for k, v in self.registers.items())
        return (
            f"Event(seq={self.seq}, vcpu={self.vcpu}, exception={self.exception}, pc={self.pc:#x}, "
            f"dr6={self.dr6:#x}, dr7={self.dr7:#x}{regs})"
        )


class Trace:
    """One row per KVM_EXIT_DEBUG: seq, vcpu, time_ns, exception, pc, dr6, dr7 (+ registers).

    Column attributes are read-only numpy arrays sharing memory with the Rust buffers.
    """

    __slots__ = ("_t", "metadata", "sink_path")

    def __init__(self, core: _core.Trace, metadata: Mapping[str, Any] | None = None) -> None:
        self._t = core
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.sink_path: str | None = None

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        *,
        mode: str = "long",
        registers: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> Trace:
        """Build a Trace from arrays (copied and cast to the column dtypes)."""
        cols = {k: np.ascontiguousarray(v, dtype=DTYPES[k]) for k, v in columns.items() if k in DTYPES}
        regs = {k: np.ascontiguousarray(v, dtype=np.uint64) for k, v in (registers or {}).items()}
        debug = kw.pop("debug", None)
        window = kw.get("window")
        if isinstance(window, Mapping):
            kw["window"] = window_from_dict(window)
        core = _core.Trace.from_columns(cols, mode=mode, registers=regs or None, debug=debug, **kw)
        return cls(core, metadata)

    # Columns -----------------------------------------------------------------
    @property
    def seq(self) -> np.ndarray:
        return self._t.seq

    @property
    def vcpu(self) -> np.ndarray:
        return self._t.vcpu

    @property
    def time_ns(self) -> np.ndarray:
        return self._t.time_ns

    @property
    def exception(self) -> np.ndarray:
        return self._t.exception

    @property
    def pc(self) -> np.ndarray:
        return self._t.pc

    @property
    def dr6(self) -> np.ndarray:
        return self._t.dr6

    @property
    def dr7(self) -> np.ndarray:
        return self._t.dr7

    @property
    def window(self) -> np.ndarray | None:
        """Each row's window index (int32; per vCPU, from 0; ``NO_WINDOW`` = -1 for rows
        outside every window), or None for a trace that ran without windows."""
        return self._t.window

    @property
    def registers(self) -> dict[str, np.ndarray]:
        """Register columns captured per event, by name."""
        return self._t.registers

    @property
    def register_names(self) -> list[str]:
        return self._t.register_names

    @property
    def column_names(self) -> list[str]:
        return [*COLUMNS, *optional_columns(self._t), *self._t.register_names]

    def column(self, name: str) -> np.ndarray:
        if name in COLUMNS or name in optional_columns(self._t):
            return getattr(self._t, name)
        regs = self._t.registers
        if name in regs:
            return regs[name]
        raise KeyError(f"no column {name!r}; columns are {self.column_names}")

    def to_numpy(self) -> dict[str, np.ndarray]:
        """All columns by name (views, no copy)."""
        return {n: self.column(n) for n in self.column_names}

    # Run facts -----------------------------------------------------------------
    @property
    def stop_reason(self) -> StopReason:
        try:
            return StopReason(self._t.stop_reason)
        except ValueError:
            return StopReason.UNKNOWN

    @property
    def stop_detail(self) -> dict[str, Any]:
        return self._t.stop_detail

    @property
    def exit_code(self) -> int | None:
        """The value the guest wrote to the debug-exit port 0xF4, if that ended the run."""
        return self._t.stop_detail.get("exit_code")

    @property
    def per_vcpu_stop(self) -> list[str]:
        return self._t.per_vcpu_stop

    @property
    def console(self) -> bytes:
        """Bytes the guest wrote to port 0xE9."""
        return self._t.console

    @property
    def console_text(self) -> str:
        return self._t.console.decode("utf-8", errors="replace")

    @property
    def elapsed_s(self) -> float:
        return self._t.elapsed_s

    @property
    def start_ns(self) -> int:
        return self._t.start_ns

    @property
    def end_ns(self) -> int:
        return self._t.end_ns

    @property
    def event_count(self) -> int:
        """Events recorded in the run, including rows streamed to a sink."""
        return self._t.event_count

    @property
    def exits(self) -> int:
        return self._t.exits

    @property
    def events_per_s(self) -> float:
        return self._t.events_per_s

    @property
    def mode(self) -> str:
        return self._t.mode

    @property
    def vcpus(self) -> int:
        return self._t.vcpus

    @property
    def debug(self) -> _core.GuestDebug | None:
        return self._t.debug

    @property
    def code_regions(self) -> list[tuple[int, bytes]]:
        return self._t.code_regions

    @property
    def cpu_user_s(self) -> float:
        """User CPU seconds of the vCPU loops (kvmtrace's own per-exit work), summed over vCPUs."""
        return self._t.cpu_user_s

    @property
    def cpu_system_s(self) -> float:
        """System CPU seconds of the vCPU loops (the kernel: KVM_RUN and what it emulates)."""
        return self._t.cpu_system_s

    @property
    def page_faults(self) -> int:
        """Minor page faults the vCPU loops took (none per event: column storage is populated up front)."""
        return self._t.page_faults

    @property
    def ioctls(self) -> int:
        """KVM ioctls the vCPU loops issued: KVM_RUN, KVM_SET_GUEST_DEBUG, register calls."""
        return self._t.ioctls

    @property
    def dropped_events(self) -> int:
        """Events recorded before the first row kept: a ring (``ring=N``) overwrote them."""
        return self._t.dropped_events

    @property
    def hits(self) -> list[dict[str, Any]]:
        """Hits per breakpoint over the whole run (dropped rows included): one dict per
        breakpoint with ``kind`` ("exec", "write", "rw", "io", "sw" or "window"),
        ``slot``, ``addr``, ``len`` and ``count`` (for the window: windows opened)."""
        return self._t.hits

    @property
    def windows(self) -> int:
        """Windows opened in the run, over all vCPUs."""
        return self._t.windows

    @property
    def window_spec(self) -> _core.Window | None:
        """The window the run used (addresses resolved), if any."""
        return self._t.window_spec

    @property
    def memory_bytes(self) -> int:
        """Heap bytes held by the columns."""
        return self._t.memory_bytes

    @property
    def bytes_per_event(self) -> float:
        n = len(self)
        return self.memory_bytes / n if n else 0.0

    # Rows --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, i: int) -> Event:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"event {i} out of range ({n} events)")
        i %= n
        t = self._t
        regs = {k: int(v[i]) for k, v in t.registers.items()}
        return Event(int(t.seq[i]), int(t.vcpu[i]), int(t.time_ns[i]), int(t.exception[i]), int(t.pc[i]),
                     int(t.dr6[i]), int(t.dr7[i]), regs)

    def __iter__(self) -> Iterator[Event]:
        t = self._t
        names = t.register_names
        regs = [t.registers[n].tolist() for n in names]
        cols = [c.tolist() for c in (t.seq, t.vcpu, t.time_ns, t.exception, t.pc, t.dr6, t.dr7)]
        for i, row in enumerate(zip(*cols)):
            yield Event._make((*row, {n: r[i] for n, r in zip(names, regs)}))

    def head(self, n: int = 10) -> list[Event]:
        return [self[i] for i in range(min(n, len(self)))]

    # Export (delegations to kvmtrace.columnar and kvmtrace.perfetto; pyarrow is imported lazily) -----
    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` sharing the column memory (no copy)."""
        return to_arrow(self)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """Arrow PyCapsule stream: ``pyarrow.table(t)``, ``polars.DataFrame(t)``, DuckDB."""
        return arrow_c_stream(self, requested_schema)

    def __arrow_c_schema__(self) -> Any:
        return arrow_c_schema(self)

    def to_parquet(self, path: Any, **kw: Any) -> Any:
        """Write a Parquet file (or a dataset directory with ``dataset=True``); see kvmtrace.columnar.write_parquet."""
        return write_parquet(self, path, **kw)

    def to_perfetto(self, path: Any, program: Any = None, **kw: Any) -> Any:
        """Chrome trace JSON for ui.perfetto.dev; see kvmtrace.perfetto.to_perfetto."""
        return to_perfetto(self, path, program, **kw)

    def dr6_summary(self) -> dict[int, int]:
        """Count of events per distinct dr6 value."""
        vals, counts = np.unique(self.dr6, return_counts=True)
        return {int(v): int(c) for v, c in zip(vals, counts)}

    def __repr__(self) -> str:
        return (
            f"<kvmtrace.Trace {len(self)} events, mode={self.mode}, stop_reason={self.stop_reason.value}, "
            f"{self.events_per_s:,.0f} events/s>"
        )
