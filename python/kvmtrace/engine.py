"""Running a trace on the Rust engine: the layer between ``Machine`` and ``_core``.

It takes resolved arguments only (addresses, not symbols; a :class:`Sink` object,
not a path), checks the Python-side ones, runs ``_core.Machine.trace`` and wraps
every outcome in a :class:`kvmtrace.Trace`: the returned trace, and the partial
trace an exception carries in ``.trace``. The sink is closed with the final trace
either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError
from kvmtrace.trace import Trace

IoHandler = Callable[[int, "bytes | None", int, int], "bytes | int | None"]


@runtime_checkable
class Sink(Protocol):
    """Where a streamed trace goes: ``write(chunk)`` per full chunk of rows (a
    ``_core.Trace``), then ``close(trace)`` with the tail and the run facts."""

    def write(self, chunk: Any) -> None: ...

    def close(self, trace: Any) -> None: ...


def check_handlers(io_handler: Any, mmio_handler: Any) -> None:
    for name, handler in (("io_handler", io_handler), ("mmio_handler", mmio_handler)):
        if handler is not None and not callable(handler):
            raise InvalidConfigError(f"invalid {name}: expected a callable(port_or_addr, data, size, vcpu), "
                                     f"got {type(handler).__name__}")


def check_registers(registers: Any) -> list[str]:
    if registers is None:
        return []
    if isinstance(registers, (str, bytes)) or not isinstance(registers, Iterable):
        raise InvalidConfigError(f'invalid registers: expected a list of names such as ("rip", "rsp"), '
                                 f"got {registers!r}")
    return list(registers)


def check_sink(sink: Any) -> Any:
    """``sink`` if it can take chunks (``write``), else InvalidConfigError."""
    if sink is not None and not callable(getattr(sink, "write", None)):
        raise InvalidConfigError(f"invalid sink: expected a dataset path or an object with write(chunk) and "
                                 f"close(trace), got {type(sink).__name__}")
    return sink


def _close(sink: Any, trace: Trace) -> None:
    if sink is not None and hasattr(sink, "close"):
        sink.close(trace)


def check_ring_sink(ring_sink: Any, ring: Any) -> Any:
    """``ring_sink`` if it can take a finished trace (``close``) and a ring is set."""
    if ring_sink is None:
        return None
    if ring is None:
        raise InvalidConfigError("invalid ring_sink: it writes the ring when the run ends with a fault; "
                                 "give ring=N too")
    if not callable(getattr(ring_sink, "close", None)):
        raise InvalidConfigError(f"invalid ring_sink: expected a dataset path or an object with close(trace), "
                                 f"got {type(ring_sink).__name__}")
    return ring_sink


def _on_fault(ring_sink: Any, trace: Trace) -> None:
    """The flight recorder's crash case: the ring goes to ``ring_sink`` only after a fault."""
    if ring_sink is not None and str(trace.stop_reason) in _core.FAULT_STOP_REASONS:
        ring_sink.close(trace)


def run_trace(core: _core.Machine, debug: _core.GuestDebug, *, max_events: int | None, stop_at: int | None,
              timeout: float | None, registers: Any, io_handler: IoHandler | None,
              mmio_handler: IoHandler | None, sink: Sink | None, sink_rows: int | None, raise_on_fault: bool,
              progress: _core.Progress | None, window: _core.Window | None = None, ring: int | None = None,
              ring_sink: Any = None) -> Trace:
    """One trace on ``core``; exceptions carry the partial trace as a ``kvmtrace.Trace``."""
    check_handlers(io_handler, mmio_handler)
    regs = check_registers(registers)
    sink = check_sink(sink)
    ring_sink = check_ring_sink(ring_sink, ring)
    try:
        raw = core.trace(debug, max_events, stop_at, timeout, regs, io_handler, mmio_handler, sink, sink_rows,
                         raise_on_fault, progress, window, ring)
    except BaseException as e:
        partial = getattr(e, "trace", None)
        if isinstance(partial, _core.Trace):
            t = Trace(partial)
            e.trace = t  # type: ignore[attr-defined]
            for what, close in (("the sink", lambda: _close(sink, t)), ("ring_sink", lambda: _on_fault(ring_sink, t))):
                try:
                    close()
                except Exception as close_error:  # keep the original error; note this one
                    e.add_note(f"writing {what} also failed: {close_error}")
        raise
    t = Trace(raw)
    _close(sink, t)
    _on_fault(ring_sink, t)
    return t
