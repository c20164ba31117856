"""Multiboot v1: the project's own test kernel (COM1, fw_cfg, LAPIC timer, debug exit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import kvmtrace
from kvmtrace import GuestDebug, Machine, _core
from kvmtrace.boot.cli import register

from kernels import MULTIBOOT_OK, build_multiboot_kernel

pytestmark = pytest.mark.requires_kvm


@pytest.fixture(scope="module")
def mb_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_multiboot_kernel(tmp_path_factory.mktemp("mbk"))


def test_boots_with_the_spec_state_and_talks_to_every_device(mb_kernel: Path) -> None:
    with Machine(memory_size=32 << 20, mode="protected", irqchip=True, vcpus=2) as m:
        prog = m.load_multiboot(mb_kernel, "answer=42")
        assert m.legacy_ports
        assert prog.symbol("_start") == m.entry
        regs = m.registers()
        assert regs["rax"] == 0x2BADB002 and regs["cr0"] & 1 and not regs["cr0"] >> 31 & 1
        t = m.trace(GuestDebug(), timeout=30)
        assert (t.stop_reason, t.exit_code) == ("exit_port", MULTIBOOT_OK)
        assert t.console == b"kvmtrace multiboot kernel: cmdline=answer=42\ncpus=2\nlapic timer ok\n"
        # reset() returns to the boot state: the kernel runs again the same way.
        m.reset()
        again = m.registers()
        assert (again["rip"], again["rax"], again["rbx"]) == (m.entry, 0x2BADB002, regs["rbx"])
        assert m.trace(GuestDebug(), timeout=30).exit_code == MULTIBOOT_OK


def test_breakpoint_by_kernel_symbol(mb_kernel: Path) -> None:
    with Machine(memory_size=32 << 20, mode="protected", irqchip=True) as m:
        prog = m.load_multiboot(mb_kernel)
        t = m.trace(GuestDebug(hw_breakpoints=[kvmtrace.HwBreakpoint(prog.symbol("puts"))]), max_events=1)
        assert t.pc[0] == prog.symbol("puts") and prog.symbolize(int(t.pc[0])) == "puts"


def test_modules_and_errors(mb_kernel: Path, tmp_path: Path) -> None:
    mod = tmp_path / "mod.bin"
    mod.write_bytes(b"payload")
    with Machine(memory_size=32 << 20, mode="protected", irqchip=True) as m:
        m.load_multiboot(mb_kernel, modules=[(mod, "mod args")])
        info = m.registers()["rbx"]
        count, addr = int.from_bytes(m.read(info + 20, 4), "little"), int.from_bytes(m.read(info + 24, 4), "little")
        start, end, line = (int.from_bytes(m.read(addr + 4 * i, 4), "little") for i in range(3))
        assert (count, m.read(start, end - start), m.read(line, 9)) == (1, b"payload", b"mod args\0")
    with Machine(memory_size=32 << 20) as m, pytest.raises(kvmtrace.InvalidConfigError, match="no Multiboot v1 header"):
        m.load_multiboot(mod)
    with Machine(memory_size=32 << 20, vcpus=2) as m, pytest.raises(kvmtrace.InvalidConfigError, match="irqchip"):
        m.load_multiboot(mb_kernel)


def test_boot_cli_exits_with_the_isa_debug_exit_status(mb_kernel: Path) -> None:
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    r = CliRunner().invoke(app, ["boot", "--multiboot", str(mb_kernel), "--memory", "32M", "--quiet",
                                 "--break", "puts", "--steps", "50", "--timeout", "60"])
    assert r.exit_code == _core.qemu_exit_status(MULTIBOOT_OK) == (MULTIBOOT_OK << 1) | 1, r.output
    assert "breakpoint hit at puts" in r.output and "50 single steps" in r.output


def test_boot_cli_windows_and_ring(mb_kernel: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    base = ["boot", "--multiboot", str(mb_kernel), "--memory", "32M", "--quiet", "--timeout", "60"]
    out = tmp_path / "w.parquet"
    r = CliRunner().invoke(app, [*base, "--window", "puts:20:repeat=2", "--out", str(out)])
    assert r.exit_code == _core.qemu_exit_status(MULTIBOOT_OK), r.output
    assert "2 window(s)" in r.output
    t = kvmtrace.read_trace(out)
    assert t.windows == 2 and t.window is not None and t.window.tolist() == [0] * 21 + [1] * 21
    r = CliRunner().invoke(app, [*base, "--ring", "100", "--out", str(tmp_path / "ring.parquet")])
    assert r.exit_code == _core.qemu_exit_status(MULTIBOOT_OK), r.output
    assert "kept the last 100 of" in r.output and "no fault" in r.output
    assert not (tmp_path / "ring.parquet").exists()
