"""CPUID control: hiding feature bits from the guest."""

from __future__ import annotations

import pytest

import kvmtrace
from kvmtrace import GuestDebug, Machine, _core

pytestmark = pytest.mark.requires_kvm

CPUID_1 = """
_start: mov $1, %eax
        xor %ecx, %ecx
        cpuid
        mov %ecx, %eax
        shr $13, %eax            # CX16
        and $1, %eax
        out %al, $0xf4
"""


def leaf(m: Machine, function: int, index: int = 0) -> tuple[int, ...]:
    return next(e for e in m.cpuid if e[0] == function and e[1] == index)


def test_hidden_feature_is_cleared_in_the_table_and_for_the_guest() -> None:
    with Machine(memory_size=1 << 20) as shown:
        shown.load_asm(CPUID_1)
        if shown.trace(GuestDebug()).exit_code != 1:
            pytest.skip("this host offers no CMPXCHG16B to hide")
    with Machine(memory_size=1 << 20, cpuid_hide=["cx16"]) as m:
        assert leaf(m, 1)[4] >> 13 & 1 == 0
        assert m.hidden_cpu_features == ("cx16",)
        m.load_asm(CPUID_1)
        assert m.trace(GuestDebug()).exit_code == 0


def test_unknown_feature_and_late_change_are_invalid_config() -> None:
    assert "xsave" in _core.CPU_FEATURES and "cx16" in _core.CPU_FEATURES
    with Machine(memory_size=1 << 20) as m:
        with pytest.raises(kvmtrace.InvalidConfigError, match="unknown CPU feature 'warp'|unknown CPU feature \"warp\""):
            m.hide_cpu_features("warp")
        m.load_asm("_start: out %al, $0xf4\n")
        m.trace(GuestDebug())
        with pytest.raises(kvmtrace.InvalidConfigError, match="before the first run"):
            m.hide_cpu_features("cx16")


def test_set_cpuid_entry_adds_a_leaf_the_guest_reads() -> None:
    src = """
    _start: mov $0x40000100, %eax
            xor %ecx, %ecx
            cpuid
            mov %ebx, %eax
            out %al, $0xf4
    """
    with Machine(memory_size=1 << 20) as m:
        m.set_cpuid_entry(0x4000_0100, 0, 0, 0x5A, 0, 0)
        assert leaf(m, 0x4000_0100)[3] == 0x5A
        m.load_asm(src)
        t = m.trace(GuestDebug())
        assert t.exit_code == 0x5A
