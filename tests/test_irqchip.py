"""Machine(irqchip=True): KVM's in-kernel LAPIC, IOAPIC, PIC and PIT."""

from __future__ import annotations

import pytest

from kvmtrace import GuestDebug, Machine

pytestmark = pytest.mark.requires_kvm

# A one-shot LAPIC timer interrupt wakes the guest from HLT; its handler writes "T" to
# the console and acknowledges it (EOI); then the guest exits with 0x2a.
TIMER_GUEST = """
_start: mov $0xfee00000, %rbx
        movl $0x1ff, 0xf0(%rbx)      # spurious-interrupt vector register: APIC on
        movl $0x40, 0x320(%rbx)      # LVT timer: vector 0x40, one-shot, unmasked
        movl $0xb, 0x3e0(%rbx)       # divide by 1
        movl $20000, 0x380(%rbx)     # initial count: the timer starts
        sti
        hlt
woken:  cli
        mov $0x2a, %al
        out %al, $0xf4
timer:  mov $'T', %al
        out %al, $0xe9
        movl $0, 0xb0(%rbx)          # EOI
        iretq
"""


def test_lapic_timer_interrupt_wakes_hlt() -> None:
    with Machine(memory_size=1 << 20, mode="long", irqchip=True) as m:
        assert m.irqchip and m.host_caps["irqchip"]
        m.load_asm(TIMER_GUEST)
        m.set_idt_handler(0x40, "timer")
        t = m.trace(GuestDebug(), timeout=20)
        assert t.stop_reason == "exit_port" and t.exit_code == 0x2A
        assert t.console == b"T"


def test_lapic_is_mmio_without_irqchip() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        assert not m.irqchip
        m.load_asm(TIMER_GUEST)
        t = m.trace(GuestDebug(), timeout=20)
        assert t.stop_reason == "mmio" and t.stop_detail["addr"] == 0xFEE000F0


def test_every_vcpu_runs_with_irqchip() -> None:
    # With the in-kernel LAPIC an AP would wait for INIT/SIPI; kvmtrace starts every
    # vCPU at the entry, as without it.
    with Machine(memory_size=1 << 20, mode="long", vcpus=2, irqchip=True) as m:
        m.load_asm("_start: mov %dil, %al\n add $0x30, %al\n out %al, $0xe9\n cli\n 1: jmp 1b\n")
        t = m.trace(GuestDebug(), timeout=2)
        assert t.stop_reason == "timeout"
        assert sorted(t.console) == [ord("0"), ord("1")]

