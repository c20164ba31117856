"""kvmtrace.analyze on traces recorded on the real host.

These check that the engine records complete, well-formed traces (no lost step,
right vector and pc semantics). The host's own deviations (e.g. the DR7 echo) are the
conformance suite's business and are reported there, not asserted either way here.
"""

from __future__ import annotations

import json

import pytest

import kvmtrace
from kvmtrace import GuestDebug, HwBreakpoint, Machine

from guests import MODES, four_targets, loop_source

pytestmark = pytest.mark.requires_kvm

ENGINE_RULES = ("exception_vector", "pc_semantics", "step_completeness")


@pytest.mark.parametrize("mode", MODES)
def test_single_step_trace_is_complete(mode: str) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        m.load_asm(loop_source(20))
        t = m.trace(GuestDebug(single_step=True))
    r = kvmtrace.analyze(t)
    for rule in ENGINE_RULES:
        assert r[rule].status == "pass", r[rule]
    assert r["step_completeness"].checked == len(t) - 1
    d = json.loads(r.to_json())
    assert {x["id"] for x in d["rules"]} >= set(ENGINE_RULES) | {"dr6_fixed_bits", "dr6_cause", "dr7_echo"}


@pytest.mark.parametrize("mode", MODES)
def test_breakpoints_with_single_step_are_consistent(mode: str) -> None:
    with Machine(memory_size=1 << 20, mode=mode) as m:
        p = m.load_asm(four_targets(3))
        dbg = GuestDebug(single_step=True, hw_breakpoints=[HwBreakpoint(p.symbol("t0")), HwBreakpoint(p.symbol("t3"))])
        t = m.trace(dbg)
    r = kvmtrace.analyze(t)
    for rule in ENGINE_RULES:
        assert r[rule].status == "pass", r[rule]


def test_a_lost_step_in_a_real_trace_is_found() -> None:
    with Machine(memory_size=1 << 20, mode="long") as m:
        m.load_asm(loop_source(5))
        t = m.trace(GuestDebug(single_step=True))
    keep = [i for i in range(len(t)) if i != 4]
    cut = kvmtrace.Trace.from_columns(
        {k: t.column(k)[keep] for k in ("pc", "dr6", "dr7", "exception", "vcpu", "seq")},
        mode=t.mode, debug=t.debug, code_regions=t.code_regions,
    )
    r = kvmtrace.analyze(cut)
    assert r["step_completeness"].status == "fail"
    assert r["step_completeness"].examples[0].index == 4
