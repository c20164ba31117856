"""kvmtrace: high-throughput vCPU debug tracing on Linux KVM.

A Rust core runs the KVM_RUN loop with the GIL released and records every
KVM_EXIT_DEBUG into typed columns; this package configures guest debugging,
analyses DR6 against the x86 architecture and exports traces.
"""

from __future__ import annotations

from kvmtrace._core import (
    CONSOLE_PORT,
    EXIT_PORT,
    NO_WINDOW,
    Exit,
    GuestDebug,
    HwBreakpoint,
    Window,
    __version__,
    build_profile,
)
from kvmtrace.exceptions import (
    AssemblerError,
    GuestFaultError,
    GuestMemoryError,
    InternalError,
    InvalidConfigError,
    KvmInternalError,
    KvmIoctlError,
    KvmPermissionError,
    KvmTraceError,
    KvmUnavailableError,
    MachineBusyError,
    MachineClosedError,
    ProgramError,
    SinkError,
    TraceFileError,
    UnsupportedError,
)
from kvmtrace.export import read_runs, read_trace
from kvmtrace.machine import Machine, Registers, Vcpu
from kvmtrace.oracle.report import DiffReport, Divergence
from kvmtrace.program import Program, Segment, Symbol, assemble, load_elf, parse_elf
from kvmtrace.trace import Event, StopReason, Trace


def analyze(trace: Trace, debug: GuestDebug | None = None, **kw):  # type: ignore[no-untyped-def]
    """Check a trace's debug state against the x86 architecture (see kvmtrace.analysis)."""
    from kvmtrace.analysis import analyze as _analyze

    return _analyze(trace, debug, **kw)


def diff(guest, mode="long", max_steps=None, reference="unicorn", **kw):  # type: ignore[no-untyped-def]
    """Run a guest on KVM and on a reference model and report where they differ (see kvmtrace.oracle).

    Needs Unicorn: ``pip install 'kvmtrace[reference]'`` (imported only when called).
    """
    from kvmtrace.oracle.differ import diff as _diff

    return _diff(guest, mode, max_steps, reference, **kw)


__all__ = [
    "CONSOLE_PORT",
    "EXIT_PORT",
    "NO_WINDOW",
    "AssemblerError",
    "DiffReport",
    "Divergence",
    "Event",
    "Exit",
    "GuestDebug",
    "GuestFaultError",
    "GuestMemoryError",
    "HwBreakpoint",
    "InternalError",
    "InvalidConfigError",
    "KvmInternalError",
    "KvmIoctlError",
    "KvmPermissionError",
    "KvmTraceError",
    "KvmUnavailableError",
    "Machine",
    "MachineBusyError",
    "MachineClosedError",
    "Program",
    "ProgramError",
    "Registers",
    "Segment",
    "SinkError",
    "StopReason",
    "Symbol",
    "Trace",
    "TraceFileError",
    "UnsupportedError",
    "Vcpu",
    "Window",
    "__version__",
    "analyze",
    "assemble",
    "build_profile",
    "diff",
    "load_elf",
    "parse_elf",
    "read_runs",
    "read_trace",
]
