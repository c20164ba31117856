"""The conformance scenarios' registry and the driver's logic (sequence alignment, sync port,
catch-all stubs, not_reached) on a scripted fake vCPU (no KVM)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import kvmtrace
from kvmtrace.conformance import MODES, SCENARIOS, Expect, Observation
from kvmtrace.conformance.align import align, same_event
from kvmtrace.conformance.driver import SYNC_PORT, GuestRun
from kvmtrace.conformance.facts import DR6_BS, DR6_CLEAN
from kvmtrace.conformance.scenarios import full_source, step_trap
from kvmtrace.conformance.scenarios.common import DB_LOG, db_log, expect_db_log

#: The scenarios of the conformance issue, each mirroring a reference test or KVM commit.
NEW_SCENARIOS = {
    "single_step_cpl3", "step_emulated", "sti_shadow", "blockirq_pending_irq", "sti_hlt_timer", "mov_ss_icebp",
    "mov_ss_gd", "mov_ss_watchpoint", "code_bp_after_mov_ss", "multi_bp_same_insn", "exec_bp_and_step",
    "rf_resume", "guest_owned_drs", "dr6_guest_preset", "inject_db_pending", "set_regs_then_step", "bus_lock",
    "dr4_alias", "int_variants",
}
REFERENCES = ("debug_regs.c", "kvm-unit-tests", "commit", "CVE-", "api.rst")


def test_new_scenarios_are_registered_with_their_reference() -> None:
    assert NEW_SCENARIOS <= set(SCENARIOS)
    for name in NEW_SCENARIOS:
        s = SCENARIOS[name]
        assert any(ref in s.cite for ref in REFERENCES), name
        assert "SDM" in s.cite or "APM" in s.cite, name


def test_every_scenario_runs_in_every_mode_where_it_applies() -> None:
    # Ring 3 does not exist in real mode; everything else runs in all three modes.
    for s in SCENARIOS.values():
        assert s.modes == (MODES if s.id != "single_step_cpl3" else ("protected", "long")), s.id


def test_interrupt_scenarios_use_the_in_kernel_irqchip() -> None:
    assert {s.id for s in SCENARIOS.values() if s.irqchip} == {"step_emulated", "blockirq_pending_irq",
                                                               "sti_hlt_timer"}


def test_vendor_dependent_scenario_says_whose_expectation() -> None:
    assert "Intel" in SCENARIOS["code_bp_after_mov_ss"].cite and "AMD" in SCENARIOS["code_bp_after_mov_ss"].cite


# ----------------------------------------------------------------------------
# Alignment
# ----------------------------------------------------------------------------

def test_first_missing_item_gets_the_first_unmatched_exit() -> None:
    exp = [step_trap(0x10), step_trap(0x12), step_trap(0x14)]
    obs = [Observation("guest_exception", exception=1, pc=0x12)]
    assert align(exp, obs) == [(0, 0), (1, None), (2, None)]


def test_pc_range_matches_as_the_same_event() -> None:
    e = Expect("debug", pc_in=(0x40, 0x50))
    assert same_event(e, Observation("debug", pc=0x4F)) and not same_event(e, Observation("debug", pc=0x50))


# ----------------------------------------------------------------------------
# The driver on a scripted vCPU
# ----------------------------------------------------------------------------

SOURCE = """
_start:
a:      nop
b:      nop
c:      nop
        SYNC
"""


class FakeWatchdog:
    active = True

    def arm(self, deadline: float) -> None:
        pass

    def disarm(self) -> None:
        pass


class FakeMachine:
    """Replays scripted exits; memory and registers are plain Python."""

    def __init__(self, exits: list[dict[str, Any]], mode: str = "long") -> None:
        self.mode = mode
        self.exits = list(exits)
        self.mem = bytearray(0x20000)
        self.regs: dict[str, int] = {"rip": 0, "cs_base": 0, "rsp": 0x7000, "ss_base": 0, "rflags": 2}
        self.debug: list[Any] = []

    def run_once(self) -> SimpleNamespace:
        fields = {"exception": None, "pc": None, "dr6": None, "dr7": None, "port": None, "addr": None,
                  "size": None, "data": None, "suberror": None, "internal_data": None, "detail": None}
        e = {**fields, **self.exits.pop(0)}
        if e.get("pc") is not None:
            self.regs["rip"] = e["pc"]
        return SimpleNamespace(**e)

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.mem[addr:addr + size])

    def write(self, addr: int, data: bytes) -> None:
        self.mem[addr:addr + len(data)] = data

    def vcpu(self, index: int = 0) -> SimpleNamespace:
        return SimpleNamespace(set_guest_debug=self.debug.append)


def guest(exits: list[dict[str, Any]], source: str = SOURCE) -> tuple[GuestRun, FakeMachine]:
    prog = kvmtrace.assemble(full_source(source, "long"), "long")
    m = FakeMachine(exits)
    for seg in prog.segments:
        m.write(seg.addr, seg.data)
    return GuestRun(m, prog, FakeWatchdog()), m  # type: ignore[arg-type]


def step(g: GuestRun, label: str) -> dict[str, Any]:
    return {"reason": "debug", "exception": 1, "pc": g.sym(label), "dr6": DR6_CLEAN | DR6_BS, "dr7": 0x400}


def test_items_after_a_stop_are_not_reached_not_missing() -> None:
    g, m = guest([])
    m.exits = [step(g, "b"), {"reason": "internal_error", "suberror": 1, "internal_data": [1]}]
    m.regs["rip"] = g.sym("b")
    g.expect_sequence([("b", step_trap(g.sym("b"))), ("c", step_trap(g.sym("c"))), ("end", step_trap(g.sym("c")))])
    got = [(c.label, c.ok, c.observed.reason) for c in g.checks]
    assert got[0] == ("b", True, "debug")
    assert got[1][2] == "internal_error" and "nop" in (g.checks[1].observed.insn or "")
    assert got[2] == ("end", False, "not_reached")
    # Nothing after the stop runs the vCPU again.
    g.expect_sequence([("later", step_trap(g.sym("c")))])
    assert g.checks[-1].observed.reason == "not_reached"


def test_an_extra_exit_takes_the_kind_of_the_expectation_it_came_before() -> None:
    g, m = guest([])
    m.exits = [step(g, "a"), step(g, "b"), step(g, "c")]
    g.expect_sequence([("a", step_trap(g.sym("a"))), ("c", step_trap(g.sym("c"), kind="mov_ss_step"))])
    extra = [c for c in g.checks if c.expected.reason == "none"]
    assert len(extra) == 1 and extra[0].expected.kind == "mov_ss_step" and extra[0].observed.pc == g.sym("b")


def test_sync_port_and_catch_all_stub() -> None:
    g, m = guest([])
    stub = g.sym("exc_1") + 8  # the host is stepping the guest's catch-all #DB stub
    m.write(0x7000, g.sym("b").to_bytes(8, "little"))
    m.exits = [{"reason": "io_out", "port": SYNC_PORT, "data": b"\0", "size": 1},
               {"reason": "debug", "exception": 1, "pc": stub, "dr6": DR6_CLEAN | DR6_BS}]
    assert g.run().reason == "sync"
    obs = g.run()
    assert (obs.reason, obs.exception, obs.pc) == ("guest_exception", 1, g.sym("b"))
    assert "took #DB" in (obs.note or "") and g.stopped is not None


def test_db_log_checks_each_entry() -> None:
    g, m = guest([{"reason": "hlt"}])
    m.mem[0x1200] = 2
    for i, (ret, dr6) in enumerate(((g.sym("b"), DR6_CLEAN | DR6_BS), (g.sym("c"), DR6_CLEAN))):
        m.write(DB_LOG + 16 * i, ret.to_bytes(8, "little"))
        m.write(DB_LOG + 16 * i + 8, dr6.to_bytes(8, "little"))
    assert db_log(g)["db1_return"] == g.sym("c")
    expect_db_log(g, "log", [("first", g.sym("b"), DR6_CLEAN | DR6_BS, "step"),
                             ("second", g.sym("c"), DR6_CLEAN | DR6_BS, "icebp")])
    assert [c.ok for c in g.checks] == [True, True, False]
    assert [m.field for m in g.checks[2].mismatches] == ["guest.dr6"] and g.checks[2].expected.kind == "icebp"


def test_db_log_stops_at_one_check_when_the_guest_never_got_there() -> None:
    g, m = guest([{"reason": "io_out", "port": 0xF4, "data": b"\x8d"}])
    expect_db_log(g, "log", [("gd", g.sym("b"), DR6_CLEAN, "guest_gd"), ("step", g.sym("c"), DR6_CLEAN, "step")])
    assert len(g.checks) == 1 and g.checks[0].observed.reason == "guest_exception"
    assert g.checks[0].expected.kind == "guest_gd"


@pytest.mark.parametrize("mode", MODES)
def test_common_guest_macros_assemble(mode: str) -> None:
    src = """
_start: PSYNC
        RESET_COUNTERS 5, 1
        TF_ON
        SET_DR 0, "OFFSET _start"
        STORE_DR 7, 0x1400
        X2APIC_ON
        SELF_IPI
        EXIT 0
        DB_RECORDER dbr
        BP_RECORDER bpr
        IRQ_HANDLER irq
"""
    prog = kvmtrace.assemble(full_source(src, mode), mode)
    assert {"dbr", "bpr", "irq", "irq_end"} <= set(prog.symbols)
