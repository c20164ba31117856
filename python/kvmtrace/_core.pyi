"""Type stubs for kvmtrace._core, the Rust extension (hand-written; keep in sync with rust/py/)."""

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Final, final

from typing_extensions import disjoint_base

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLUMNS",
    "CONSOLE_PORT",
    "CPU_FEATURES",
    "Dr6",
    "Dr7",
    "EXIT_PORT",
    "Exit",
    "FAULT_STOP_REASONS",
    "FIXED_BYTES_PER_EVENT",
    "FW_CFG_PORT",
    "GP_REGISTERS",
    "GUESTDBG_FLAGS",
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
    "LEGACY_GUESTDBG_FLAGS",
    "MODES",
    "MODE_BITS",
    "Machine",
    "MachineBusyError",
    "MachineClosedError",
    "NO_WINDOW",
    "OPTIONAL_COLUMNS",
    "Progress",
    "REGISTER_NAMES",
    "RFLAGS_IF",
    "RFLAGS_IOPL",
    "RFLAGS_RF",
    "RFLAGS_TF",
    "STOP_REASONS",
    "SinkError",
    "StopReason",
    "Trace",
    "TraceFileError",
    "UART_COM1",
    "UnsupportedError",
    "VECTOR_BP",
    "VECTOR_DB",
    "VECTOR_UD",
    "Window",
    "__version__",
    "boot_linux",
    "boot_multiboot",
    "build_profile",
    "cpuid_entries",
    "extract_vmlinux",
    "hide_cpu_features",
    "legacy_ports",
    "qemu_exit_status",
    "set_console_echo",
    "set_cpuid_entry",
    "set_symbols",
]

__version__: Final[str]
build_profile: Final[str]
FIXED_BYTES_PER_EVENT: Final[int]
CONSOLE_PORT: Final[int]
EXIT_PORT: Final[int]

# Hardware and schema facts: defined once in the Rust core (rust/arch, rust/debug,
# rust/recorder.rs, rust/runloop/stop.rs), exported by rust/py/facts.rs.
VECTOR_DB: Final[int]
VECTOR_BP: Final[int]
VECTOR_UD: Final[int]
RFLAGS_TF: Final[int]
RFLAGS_IF: Final[int]
RFLAGS_IOPL: Final[int]
RFLAGS_RF: Final[int]
GUESTDBG_FLAGS: Final[dict[int, str]]
LEGACY_GUESTDBG_FLAGS: Final[int]
GP_REGISTERS: Final[tuple[str, ...]]
REGISTER_NAMES: Final[tuple[str, ...]]
COLUMNS: Final[tuple[tuple[str, str], ...]]
OPTIONAL_COLUMNS: Final[tuple[tuple[str, str], ...]]
NO_WINDOW: Final[int]
STOP_REASONS: Final[tuple[str, ...]]
FAULT_STOP_REASONS: Final[tuple[str, ...]]
MODES: Final[tuple[str, ...]]
MODE_BITS: Final[dict[str, int]]

@final
class Dr6:
    """DR6, the debug status register: bit masks and the clean value 0xffff0ff0."""

    B0: ClassVar[int]
    B1: ClassVar[int]
    B2: ClassVar[int]
    B3: ClassVar[int]
    BD: ClassVar[int]
    BS: ClassVar[int]
    BT: ClassVar[int]
    RTM: ClassVar[int]
    CLEAN: ClassVar[int]
    FIXED_MASK: ClassVar[int]
    CAUSE_MASK: ClassVar[int]
    @staticmethod
    def names(value: int) -> str:
        """``B0|BS``-style names of the cause bits (``RTM=0`` if bit 16 is clear, ``none`` if no cause)."""
    @staticmethod
    def b(slot: int) -> int:
        """Bn of slot ``slot`` (0-3)."""

@final
class Dr7:
    """DR7, the debug control register: fixed bits and the per-slot encoding."""

    FIXED_1: ClassVar[int]
    RTM: ClassVar[int]
    GD: ClassVar[int]
    RESERVED_0: ClassVar[int]
    RW_BITS: ClassVar[dict[str, int]]
    LEN_BITS: ClassVar[dict[int, int]]
    @staticmethod
    def slot_bits(slot: int, kind: str, length: int) -> int:
        """The L, R/W and LEN bits of one breakpoint in slot ``slot``."""
    @staticmethod
    def enable_mask(slot: int) -> int: ...
    @staticmethod
    def decode(value: int) -> list[tuple[bool, str, int]]:
        """The four slots of a DR7 value: (enabled, kind, length) each."""

class StopReason(enum.StrEnum):
    """Why a trace ended (a str: compares equal to its value)."""

    MAX_EVENTS = "max_events"
    STOP_AT = "stop_at"
    HLT = "hlt"
    EXIT_PORT = "exit_port"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    SHUTDOWN = "shutdown"
    INTERNAL_ERROR = "internal_error"
    FAIL_ENTRY = "fail_entry"
    IO = "io"
    MMIO = "mmio"
    HANDLER_ERROR = "handler_error"
    SINK_ERROR = "sink_error"
    KVM_ERROR = "kvm_error"
    THREAD_ERROR = "thread_error"
    NO_PROGRESS = "no_progress"
    OTHER = "other"
    UNKNOWN = "unknown"

@final
class Progress:
    """Live counters of the trace it is passed to (``trace(progress=p)``)."""

    def __new__(cls) -> Progress: ...
    @property
    def events(self) -> int: ...
    @property
    def exits(self) -> int: ...

class KvmTraceError(Exception): ...
class KvmUnavailableError(KvmTraceError): ...
class KvmPermissionError(KvmUnavailableError): ...
class UnsupportedError(KvmTraceError): ...
class InvalidConfigError(KvmTraceError, ValueError): ...
class GuestMemoryError(InvalidConfigError, IndexError): ...
class GuestFaultError(KvmTraceError):
    trace: Any
    registers: dict[str, int]
    vcpu: int
    stop_reason: str

class KvmInternalError(GuestFaultError):
    suberror: int
    data: list[int]

class KvmIoctlError(KvmTraceError):
    errno: int

class MachineClosedError(KvmTraceError): ...
class MachineBusyError(KvmTraceError): ...
class SinkError(KvmTraceError):
    trace: Any

class TraceFileError(KvmTraceError): ...
class InternalError(KvmTraceError): ...

@final
class HwBreakpoint:
    """One hardware breakpoint (DR0-DR3). Exec breakpoints have length 1; addresses
    are aligned to their length; io breakpoints take a port and need CR4.DE."""

    def __new__(cls, addr: int, kind: str | None = None, length: int | None = None) -> HwBreakpoint: ...
    @property
    def addr(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def length(self) -> int: ...
    def dr7_bits(self, slot: int) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class GuestDebug:
    """A KVM_SET_GUEST_DEBUG configuration, validated on construction."""

    def __new__(
        cls,
        single_step: bool | None = None,
        block_irq: bool | None = None,
        hw_breakpoints: Iterable[HwBreakpoint | tuple[int, str, int] | int] | None = None,
        sw_breakpoints: Iterable[int] | None = None,
        inject_db: bool | None = None,
        inject_bp: bool | None = None,
        general_detect: bool | None = None,
        raw_debugreg: Sequence[int] | None = None,
    ) -> GuestDebug: ...
    @property
    def single_step(self) -> bool: ...
    @property
    def block_irq(self) -> bool: ...
    @property
    def inject_db(self) -> bool: ...
    @property
    def inject_bp(self) -> bool: ...
    @property
    def general_detect(self) -> bool: ...
    @property
    def hw_breakpoints(self) -> list[HwBreakpoint]: ...
    @property
    def sw_breakpoints(self) -> list[int]: ...
    @property
    def raw_debugreg(self) -> tuple[int, int, int, int, int] | None: ...
    @property
    def dr7(self) -> int:
        """DR7 as programmed: bit 10, L bits, R/W and LEN fields, GD on request."""
    @property
    def debugreg(self) -> list[int]:
        """kvm_guest_debug.arch.debugreg: DR0-DR3, three unused, DR7."""
    @property
    def control(self) -> int:
        """kvm_guest_debug.control including one-shot injection flags."""
    def to_dict(self) -> dict[str, Any]: ...
    @staticmethod
    def from_dict(d: dict[str, Any]) -> GuestDebug: ...

@final
class Exit:
    """One vCPU exit from Machine.run_once."""

    reason: str
    exception: int | None
    pc: int | None
    dr6: int | None
    dr7: int | None
    port: int | None
    addr: int | None
    size: int | None
    data: bytes | None
    suberror: int | None
    internal_data: list[int] | None
    detail: str | None

@final
class Window:
    """Where a trace single-steps: from each execution of ``start`` for ``steps``
    instructions or ``until`` an address (rust/runloop/window.rs)."""

    def __new__(
        cls, start: int | str, *, steps: int | None = None, until: int | str | None = None,
        repeat: bool | int | None = None, block_irq: bool | None = None,
    ) -> Window: ...
    @property
    def start(self) -> int | str: ...
    @property
    def until(self) -> int | str | None: ...
    @property
    def steps(self) -> int | None: ...
    @property
    def repeat(self) -> int | None: ...
    @property
    def block_irq(self) -> bool: ...
    @property
    def symbols(self) -> list[str]: ...
    def resolved(self, start: int, until: int | None = None) -> Window: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Trace:
    """Recorded columns (zero-copy read-only numpy views) and how the run ended."""

    def __len__(self) -> int: ...
    @property
    def seq(self) -> npt.NDArray[np.uint64]: ...
    @property
    def vcpu(self) -> npt.NDArray[np.uint16]: ...
    @property
    def time_ns(self) -> npt.NDArray[np.uint64]: ...
    @property
    def exception(self) -> npt.NDArray[np.uint8]: ...
    @property
    def pc(self) -> npt.NDArray[np.uint64]: ...
    @property
    def dr6(self) -> npt.NDArray[np.uint64]: ...
    @property
    def dr7(self) -> npt.NDArray[np.uint64]: ...
    @property
    def window(self) -> npt.NDArray[np.int32] | None: ...
    @property
    def register_names(self) -> list[str]: ...
    @property
    def registers(self) -> dict[str, npt.NDArray[np.uint64]]: ...
    @property
    def stop_reason(self) -> str: ...
    @property
    def stop_detail(self) -> dict[str, Any]: ...
    @property
    def per_vcpu_stop(self) -> list[str]: ...
    @property
    def console(self) -> bytes: ...
    @property
    def start_ns(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def event_count(self) -> int: ...
    @property
    def exits(self) -> int: ...
    @property
    def events_per_s(self) -> float: ...
    @property
    def mode(self) -> str: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def debug(self) -> GuestDebug | None: ...
    @property
    def code_regions(self) -> list[tuple[int, bytes]]: ...
    @property
    def cpu_user_s(self) -> float: ...
    @property
    def cpu_system_s(self) -> float: ...
    @property
    def page_faults(self) -> int: ...
    @property
    def ioctls(self) -> int: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def hits(self) -> list[dict[str, Any]]: ...
    @property
    def windows(self) -> int: ...
    @property
    def window_spec(self) -> Window | None: ...
    @property
    def memory_bytes(self) -> int: ...
    @staticmethod
    def from_columns(
        columns: dict[str, npt.NDArray[Any]],
        *,
        mode: str = ...,
        registers: dict[str, npt.NDArray[np.uint64]] | None = None,
        stop_reason: str = ...,
        stop_detail: dict[str, Any] | None = None,
        console: bytes = ...,
        start_ns: int = 0,
        end_ns: int = 0,
        event_count: int | None = None,
        exits: int = 0,
        vcpus: int = 1,
        debug: GuestDebug | None = None,
        code_regions: list[tuple[int, bytes]] = ...,
        per_vcpu_stop: list[str] = ...,
        dropped_events: int = 0,
        hits: list[dict[str, Any]] | None = None,
        windows: int = 0,
        window: Window | None = None,
    ) -> Trace: ...

_IoHandler = Callable[[int, bytes | None, int, int], bytes | int | None]

@disjoint_base
class Machine:
    """A KVM VM: guest memory, vCPUs, and the mode they start in."""

    def __new__(
        cls, memory_size: int | None = None, mode: str | None = None, vcpus: int | None = None,
        irqchip: bool | None = None,
    ) -> Machine: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def mode(self) -> str: ...
    @property
    def bits(self) -> int: ...
    @property
    def memory_size(self) -> int: ...
    @property
    def vcpu_count(self) -> int: ...
    @property
    def irqchip(self) -> bool: ...
    @property
    def layout(self) -> dict[str, tuple[int, int]]: ...
    @property
    def host_caps(self) -> dict[str, Any]: ...
    @property
    def host(self) -> dict[str, Any]: ...
    @property
    def entry(self) -> int: ...
    def set_entry(self, addr: int) -> None: ...
    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: bytes) -> None: ...
    def load(self, data: bytes, addr: int) -> None: ...
    def set_idt_handler(self, vector: int, handler: int) -> None: ...
    def get_register(self, name: str, vcpu: int | None = None) -> int: ...
    def set_register(self, name: str, value: int, vcpu: int | None = None) -> None: ...
    def registers(self, vcpu: int | None = None) -> dict[str, int]: ...
    def reset(self, vcpu: int | None = None) -> None: ...
    def set_guest_debug(self, debug: GuestDebug | None, vcpu: int | None = None) -> None: ...
    def run_once(self, vcpu: int | None = None) -> Exit: ...
    def trace(
        self,
        debug: GuestDebug,
        max_events: int | None = None,
        stop_at: int | None = None,
        timeout: float | None = None,
        registers: Sequence[str] | None = None,
        io_handler: _IoHandler | None = None,
        mmio_handler: _IoHandler | None = None,
        sink: Any | None = None,
        sink_rows: int | None = None,
        raise_on_fault: bool | None = None,
        progress: Progress | None = None,
        window: Window | None = None,
        ring: int | None = None,
    ) -> Trace: ...

# Booting kernels and their devices (rust/py/boot.rs) -------------------------------
CPU_FEATURES: list[str]
UART_COM1: int
FW_CFG_PORT: int

def extract_vmlinux(kernel: bytes) -> tuple[bytes, str, str | None]: ...
def boot_linux(machine: Machine, kernel: bytes, cmdline: str, initrd: bytes | None = None) -> dict[str, Any]: ...
def boot_multiboot(machine: Machine, image: bytes, cmdline: str,
                   modules: list[tuple[bytes, str]] = ...) -> dict[str, int]: ...
def set_symbols(machine: Machine, entries: list[tuple[int, int, str]]) -> None: ...
def hide_cpu_features(machine: Machine, names: list[str]) -> None: ...
def cpuid_entries(machine: Machine) -> list[tuple[int, int, int, int, int, int]]: ...
def set_cpuid_entry(machine: Machine, function: int, index: int, eax: int, ebx: int, ecx: int, edx: int) -> None: ...
def set_console_echo(machine: Machine, fd: int | None = None) -> None: ...
def legacy_ports(machine: Machine, on: bool | None = None) -> bool: ...
def qemu_exit_status(value: int) -> int: ...
