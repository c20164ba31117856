"""Built-in devices: COM1 (16550), fw_cfg, legacy port answers, console echo."""

from __future__ import annotations

import os

import pytest

import kvmtrace
from kvmtrace import GuestDebug, Machine, _core

pytestmark = pytest.mark.requires_kvm

UART_GUEST = f"""
_start: mov $0x3fd, %dx          # LSR
1:      in %dx, %al
        test $0x20, %al          # THRE
        jz 1b
        mov ${_core.UART_COM1}, %dx
        mov $'o', %al
        out %al, %dx
        mov $'k', %al
        out %al, %dx
        mov $0x3fd, %dx
        in %dx, %al
        out %al, $0xf4           # exit code = LSR
"""


def test_com1_output_joins_the_console_and_lsr_says_ready() -> None:
    with Machine(memory_size=1 << 20) as m:
        m.load_asm(UART_GUEST)
        t = m.trace(GuestDebug())
        assert t.console == b"ok"
        assert t.stop_reason == "exit_port"
        assert t.exit_code & 0x60 == 0x60  # THRE and TEMT


def test_fw_cfg_reports_signature_and_vcpu_count() -> None:
    src = f"""
    _start: cmp $0, %rdi             # vCPU 0 asks; the other one parks in hlt
            jne 2f
            mov ${_core.FW_CFG_PORT}, %dx
            mov $5, %ax              # FW_CFG_NB_CPUS
            out %ax, %dx
            inc %dx
            in %dx, %al
            out %al, $0xf4
    2:      hlt
            jmp 2b
    """
    with Machine(memory_size=1 << 20, vcpus=2) as m:
        m.load_asm(src)
        t = m.trace(GuestDebug(), timeout=10)
        assert (t.stop_reason, t.exit_code) == ("exit_port", 2)


LEGACY_PROBE = """
_start: in $0x64, %al       # i8042 status
        mov %al, %bl
        out %al, $0x80      # POST code
        mov $0x8a, %al      # CMOS register A
        out %al, $0x70
        in $0x71, %al
        shl $8, %eax
        mov %bl, %al
        out %eax, $0xf4
"""


def test_legacy_ports_are_off_by_default_and_answer_when_on() -> None:
    with Machine(memory_size=1 << 20) as m:
        m.load_asm(LEGACY_PROBE)
        t = m.trace(GuestDebug())
        assert t.stop_reason == "io" and t.stop_detail["port"] == 0x64
        m.reset()
        m.legacy_ports = True
        t = m.trace(GuestDebug())
        # No i8042 (an undriven bus reads all ones); CMOS register A: no update in progress.
        assert t.exit_code == 0x26FF


def test_io_handler_sees_legacy_ports_before_the_fixed_answers() -> None:
    seen = []

    def io(port, data, size, vcpu):  # type: ignore[no-untyped-def]
        seen.append(port)
        return 0x42 if data is None else None

    with Machine(memory_size=1 << 20, legacy_ports=True) as m:
        m.load_asm(LEGACY_PROBE)
        t = m.trace(GuestDebug(), io_handler=io)
        assert seen == [0x64, 0x80, 0x70, 0x71]
        assert t.exit_code == 0x4242


def test_console_echo_copies_output_live_to_a_descriptor() -> None:
    r, w = os.pipe()
    try:
        with Machine(memory_size=1 << 20) as m:
            m.load_asm(UART_GUEST)
            m.echo_console(w)
            m.trace(GuestDebug())
            m.echo_console(None)
        assert os.read(r, 100) == b"ok"
    finally:
        os.close(r)
        os.close(w)
    with Machine(memory_size=1 << 20) as m, pytest.raises(kvmtrace.InvalidConfigError, match="console"):
        m.echo_console(-1)
