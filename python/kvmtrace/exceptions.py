"""The kvmtrace exception hierarchy (defined in the Rust core, re-exported here).

::

    KvmTraceError
    ├── KvmUnavailableError          /dev/kvm missing or unusable
    │   └── KvmPermissionError       /dev/kvm not openable by this user
    ├── UnsupportedError             a KVM capability or KVM_GUESTDBG_* flag is absent
    ├── InvalidConfigError (ValueError)   a parameter is wrong; the message names it
    │   ├── GuestMemoryError (IndexError) access outside guest memory
    │   ├── AssemblerError           GNU as rejected the source (message and line)
    │   └── ProgramError             a guest ELF/binary cannot be loaded
    ├── GuestFaultError              triple fault / failed VM entry (.trace, .registers)
    │   └── KvmInternalError         KVM_EXIT_INTERNAL_ERROR (.suberror, .data)
    ├── KvmIoctlError                an ioctl failed unexpectedly (.errno)
    ├── MachineClosedError           the Machine was closed
    ├── MachineBusyError             the Machine is in use by another thread
    ├── SinkError                    the trace sink failed; rows kept in .trace
    ├── TraceFileError               a stored trace cannot be read
    └── InternalError                a kvmtrace bug
"""

from __future__ import annotations

from kvmtrace._core import (
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
    SinkError,
    TraceFileError,
    UnsupportedError,
)


class AssemblerError(InvalidConfigError):  # type: ignore[misc, valid-type]
    """GNU as rejected the guest source; the message quotes its error and the line."""

    __module__ = "kvmtrace"


class ProgramError(InvalidConfigError):  # type: ignore[misc, valid-type]
    """A guest program (ELF or raw) cannot be loaded; the message says why."""

    __module__ = "kvmtrace"


__all__ = [
    "AssemblerError",
    "GuestFaultError",
    "GuestMemoryError",
    "InternalError",
    "InvalidConfigError",
    "KvmInternalError",
    "KvmIoctlError",
    "KvmPermissionError",
    "KvmTraceError",
    "KvmUnavailableError",
    "MachineBusyError",
    "MachineClosedError",
    "ProgramError",
    "SinkError",
    "TraceFileError",
    "UnsupportedError",
]
