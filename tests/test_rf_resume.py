"""The RFLAGS.RF probe (Machine.host) and what it decides: how a breakpoint hit is resumed."""

from __future__ import annotations

import pytest

from kvmtrace import GuestDebug, HwBreakpoint, Machine
from kvmtrace.conformance import SCENARIOS, Verdict, run_scenario
from kvmtrace.conformance.driver import Watchdog

pytestmark = pytest.mark.requires_kvm

CALLS = 50
HOT = f"""
_start: mov ${CALLS}, %cx
loop:   call hot
        dec %cx
        jnz loop
        out %al, $0xf4
hot:    nop
        ret
"""


def test_probe_is_a_host_fact() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        first = m.host
    with Machine(memory_size=1 << 20, mode="long") as m:
        assert m.host == first, "probed once per process"
    assert isinstance(first["rf_resume"], bool)


def test_probe_agrees_with_the_rf_resume_scenario() -> None:
    # Both observe the same host: resuming with RF set either suppresses the
    # instruction breakpoint (the scenario passes) or it does not.
    with Machine(memory_size=1 << 20, mode="real") as m:
        honoured = m.host["rf_resume"]
    with Watchdog() as wd:
        result = run_scenario(SCENARIOS["rf_resume"], "real", wd)
    assert (result.verdict is Verdict.PASS) == honoured, result.reason


def test_a_breakpoint_hit_costs_what_the_probe_chose() -> None:
    with Machine(memory_size=1 << 20, mode="real") as m:
        prog = m.load_asm(HOT)
        per_hit = 1 if m.host["rf_resume"] else 4  # KVM_RUN only, or disarm + step + re-arm
        t = m.trace(GuestDebug(hw_breakpoints=[HwBreakpoint(prog.symbol("hot"))]))
    assert t.stop_reason == "exit_port" and len(t) == CALLS
    assert set(t.pc.tolist()) == {prog.symbol("hot")}, "each hit once, at the instruction"
    assert t.ioctls == CALLS * per_hit + 1, "plus the KVM_RUN that ends at the exit port"
