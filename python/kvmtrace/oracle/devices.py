"""The devices behind ports and MMIO, answered the same way on the KVM and reference sides.

A read returns a fixed byte per port / per address (a hash of it), so the answer does
not depend on how either side splits or batches an access; every write is recorded
byte by byte, in order, and the two records are compared. Port 0xE9 (console) and
0xF4 (debug exit) follow kvmtrace's QEMU conventions (``kvmtrace.CONSOLE_PORT`` /
``EXIT_PORT``): the reference side models them as the KVM run loop does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import kvmtrace._core as _core

CONSOLE_PORT = _core.CONSOLE_PORT
EXIT_PORT = _core.EXIT_PORT

# One byte written: (space "io" | "mmio", port or address, value).
WriteByte = tuple[str, int, int]


def port_byte(port: int) -> int:
    """The byte every read of ``port`` returns (a multiplicative hash)."""
    return (port * 0x9E3779B1 >> 13) & 0xFF


def mmio_byte(addr: int) -> int:
    """The byte a read of MMIO address ``addr`` returns."""
    return ((addr * 0x85EBCA77) >> 11 ^ addr) & 0xFF


@dataclass
class Devices:
    """One side's device state: the write record and the console."""

    writes: list[WriteByte] = field(default_factory=list)
    console: bytearray = field(default_factory=bytearray)

    # Reads -------------------------------------------------------------------
    @staticmethod
    def port_read(port: int, size: int) -> bytes:
        if port == CONSOLE_PORT:
            return bytes([CONSOLE_PORT & 0xFF]) * size
        return bytes([port_byte(port)]) * size

    @staticmethod
    def mmio_read(addr: int, size: int) -> bytes:
        return bytes(mmio_byte(addr + k) for k in range(size))

    # Writes ------------------------------------------------------------------
    def port_write(self, port: int, data: bytes) -> None:
        if port == CONSOLE_PORT:
            self.console += data
            return
        self.writes.extend(("io", port, b) for b in data)

    def mmio_write(self, addr: int, data: bytes) -> None:
        self.writes.extend(("mmio", addr + k, b) for k, b in enumerate(data))

    # kvmtrace handlers (Machine.trace io_handler= / mmio_handler=) -------------
    def io_handler(self, port: int, data: bytes | None, size: int, vcpu: int) -> bytes | None:
        if data is None:
            return self.port_read(port, size)
        self.port_write(port, bytes(data))
        return None

    def mmio_handler(self, addr: int, data: bytes | None, size: int, vcpu: int) -> bytes | None:
        if data is None:
            return self.mmio_read(addr, size)
        self.mmio_write(addr, bytes(data))
        return None
