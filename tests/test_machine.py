"""Machine: memory, registers, programs, layout, lifetime (real /dev/kvm)."""

from __future__ import annotations

import gc
import os

import pytest

import kvmtrace
from kvmtrace import GuestDebug, Machine

from guests import CONSOLE, MODES

pytestmark = pytest.mark.requires_kvm


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("mode", MODES)
def test_memory_read_write_load(mode: str) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        m.write(0x1000, b"\x01\x02\x03")
        assert m.read(0x1000, 3) == b"\x01\x02\x03"
        m.load(b"\x90\x90", 0x9000)
        assert m.read(0x9000, 2) == b"\x90\x90"
        m.write(m.memory_size - 1, b"\xff")
        assert m.read(m.memory_size - 1, 1) == b"\xff"


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.read(m.memory_size - 1, 2),
        lambda m: m.read(1 << 40, 1),
        lambda m: m.write(m.memory_size, b"x"),
        lambda m: m.load(b"\x90" * 16, m.memory_size - 8),
    ],
)
def test_out_of_range_access_raises(call) -> None:  # type: ignore[no-untyped-def]
    with Machine(memory_size=1 << 20, mode="long") as m:
        with pytest.raises(kvmtrace.GuestMemoryError, match="outside guest memory") as e:
            call(m)
        assert isinstance(e.value, IndexError) and isinstance(e.value, kvmtrace.KvmTraceError)


def test_layout_is_documented_and_queryable() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        lay = m.layout
        assert lay["code"][0] == 0x8000 == m.entry
        assert lay["gdt"][0] == 0x10000 and lay["idt"][0] == 0x11000
        assert lay["page_tables"][0] == 0x12000
        assert lay["free"] == (0x18000, (1 << 20) - 0x18000)
        regs = m.registers()
        assert regs["cr3"] == 0x12000 and regs["efer"] & 0x500 == 0x500 and regs["cr0"] & 0x80000001
        assert regs["cs"] == 0x08 and regs["rip"] == 0x8000 and regs["rsp"] == 0x8000


@pytest.mark.parametrize("mode,cs,cr0_pe", [("real", 0, 0), ("protected", 0x18, 1), ("long", 0x08, 1)])
def test_mode_setup(mode: str, cs: int, cr0_pe: int) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        assert m.mode == mode and m.bits == {"real": 16, "protected": 32, "long": 64}[mode]
        assert m.regs["cs"] == cs
        assert m.regs["cr0"] & 1 == cr0_pe
        assert m.regs["idt_base" if False else "cs_base"] == 0


def test_registers_by_name_including_debug_registers() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        v = m.vcpu(0)
        v.regs["rax"] = 0x1234
        v.regs["r15"] = 0xFFFF_FFFF_FFFF_FFFF
        assert v.regs["rax"] == 0x1234 and v.regs["r15"] == 0xFFFF_FFFF_FFFF_FFFF
        v.regs["dr0"] = 0x8000
        v.regs["dr7"] = 0x401
        assert v.regs["dr0"] == 0x8000 and v.regs["dr7"] == 0x401
        assert v.regs["dr6"] & 0xFFFF0FF0 == 0xFFFF0FF0
        v.regs["cr4"] = v.regs["cr4"] | 0x8
        assert v.regs["cr4"] & 0x8
        with pytest.raises(kvmtrace.InvalidConfigError, match="xmm0"):
            v.regs["xmm0"]
        with pytest.raises(kvmtrace.InvalidConfigError, match="rax"):
            v.regs["rax"] = -1


def test_console_and_exit_port() -> None:
    for mode in MODES:
        with Machine(memory_size=1 << 20, mode=mode) as m:
            m.load_asm(CONSOLE)
            t = m.trace(GuestDebug())
            assert t.console == b"ok\n"
            assert t.stop_reason == kvmtrace.StopReason.EXIT_PORT and t.exit_code == 7
            assert len(t) == 0


def test_run_once_returns_exits() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm(CONSOLE)
        e = m.run_once()
        assert (e.reason, e.port, e.data, e.size) == ("io_out", 0xE9, b"o", 1)
        m.vcpu(0).set_guest_debug(GuestDebug(single_step=True))
        e = m.vcpu(0).run_once()
        assert e.reason == "debug" and e.exception == 1 and e.dr6 & (1 << 14)
        assert e.pc == m.regs["rip"]
        m.vcpu(0).set_guest_debug(None)


def test_io_and_mmio_handlers() -> None:
    src = """
    _start: in $0x60, %al
            mov %al, %bl
            mov $0x55, %al
            out %al, $0x61
            mov (0x20000000), %ecx
            mov %ecx, (0x20000004)
            mov %bl, %al
            out %al, $0xf4
    """
    seen = []

    def io(port, data, size, vcpu):  # type: ignore[no-untyped-def]
        seen.append(("io", port, data, size, vcpu))
        return 0x41 if data is None else None

    def mmio(addr, data, size, vcpu):  # type: ignore[no-untyped-def]
        seen.append(("mmio", addr, data, size, vcpu))
        return b"\x78\x56\x34\x12" if data is None else None

    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm(src)
        t = m.trace(GuestDebug(), io_handler=io, mmio_handler=mmio)
        assert t.exit_code == 0x41
        assert seen == [
            ("io", 0x60, None, 1, 0),
            ("io", 0x61, b"\x55", 1, 0),
            ("mmio", 0x20000000, None, 4, 0),
            ("mmio", 0x20000004, b"\x78\x56\x34\x12", 4, 0),
        ]
        # Without handlers the run stops with a clear reason.
        m.reset()
        t = m.trace(GuestDebug())
        assert t.stop_reason == "io" and t.stop_detail["port"] == 0x60 and t.stop_detail["write"] is False


def test_handler_exception_propagates_with_partial_trace() -> None:
    def boom(port, data, size, vcpu):  # type: ignore[no-untyped-def]
        raise RuntimeError("device model failed")

    with Machine(memory_size=1 << 20, mode="real") as m:
        m.load_asm("_start: nop\n nop\n out %al, $0x80\n hlt\n")
        with pytest.raises(RuntimeError, match="device model failed") as e:
            m.trace(GuestDebug(single_step=True), io_handler=boom)
        assert len(e.value.trace) == 2  # type: ignore[attr-defined]
        assert m.last_trace is e.value.trace  # type: ignore[attr-defined]


def test_close_frees_fds_and_is_idempotent() -> None:
    before = fd_count()
    m = Machine(memory_size=1 << 20, mode="long", vcpus=2)
    assert fd_count() >= before + 3  # the VM and 2 vCPUs
    m.close()
    assert fd_count() == before
    m.close()
    assert m.closed
    with pytest.raises(kvmtrace.MachineClosedError):
        m.read(0, 1)
    with pytest.raises(kvmtrace.MachineClosedError):
        m.trace(GuestDebug(single_step=True))


def test_garbage_collection_frees_fds() -> None:
    before = fd_count()
    for _ in range(20):
        m = Machine(memory_size=1 << 20, mode="real")
        m.load(b"\xf4", 0x8000)
        m.trace(GuestDebug())
        del m
    gc.collect()
    assert fd_count() == before


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"memory_size": 4096}, "memory_size"),
        ({"memory_size": (1 << 20) + 1}, "memory_size"),
        ({"memory_size": 1 << 40}, "memory_size"),
        ({"memory_size": -1}, "memory_size"),
        ({"mode": "v86"}, "mode"),
        ({"vcpus": 0}, "vcpus"),
        ({"vcpus": 100000}, "vcpus"),
        ({"vcpus": "two"}, "vcpus"),
    ],
)
def test_bad_machine_parameters(kwargs: dict, field: str) -> None:
    with pytest.raises(kvmtrace.InvalidConfigError, match=field):
        Machine(**kwargs)


def test_assemble_errors_show_message_and_line() -> None:
    with pytest.raises(kvmtrace.AssemblerError, match=r"line 2: .*\n\s+bogus %eax"):
        kvmtrace.assemble("nop\nbogus %eax\n", mode="long")
    with pytest.raises(kvmtrace.AssemblerError, match="empty"):
        kvmtrace.assemble("   \n", mode="real")


def test_elf_program_with_symbols(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prog = kvmtrace.assemble(
        """
        .globl _start
        .type _start, @function
    _start: call f
            mov $3, %al
            out %al, $0xf4
        .size _start, . - _start
        .type f, @function
    f:      ret
        .size f, . - f
        """,
        mode="long",
        addr=0x20000,
    )
    assert prog.entry == prog.symbol("_start") == 0x20000
    assert prog.symbols["f"].kind == "func"
    assert prog.symbolize(prog.symbol("f")) == "f"
    assert prog.symbolize(prog.symbol("_start") + 2) == "_start+0x2"
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_program(prog)
        assert m.entry == 0x20000
        t = m.trace(GuestDebug(single_step=True))
        assert t.exit_code == 3
        assert list(t.pc[:2]) == [prog.symbol("f"), 0x20005]
