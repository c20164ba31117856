"""The guest's own debug registers: programmed and used by the guest with host debugging off,
on and off again; DR6 bits the guest presets; the DR4/DR5 aliases."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.facts import (
    DB_VECTOR,
    DR6_B,
    DR6_BD,
    DR6_BS,
    DR6_BT,
    DR6_CLEAN,
    DR7_FIXED_1,
    UD_VECTOR,
    Dr7,
)
from kvmtrace.conformance.scenarios.common import (
    COUNT_UD,
    SYNC,
    UD_RETURN,
    Scenario,
    bp_hit,
    expect_db_log,
    guest_exit,
    hw_bp,
    static,
    step_trap,
)

GUEST_DRS_CITE = (
    "SDM §18.2 (DR0-DR3, DR6, DR7 are the guest's architectural state), §18.3.1.1 (its own instruction "
    "breakpoint: a fault at the instruction, DR6.B0; B0-B3 are updated on each #DB, as kvm-unit-tests "
    "x86/debug.c checks after presetting DR6.B1); APM §13.1.1; KVM api.rst "
    "KVM_SET_GUEST_DEBUG (host debugging must not change the guest's registers once it is off again) and "
    "KVM_GET_DEBUGREGS; KVM x86.c KVM_DEBUGREG_WONT_EXIT (guest DR writes without exits, synced back)."
)
#: What the guest programs (guest_owned_drs.S): DR1-DR3 are disabled addresses, DR6 its own B1|B3.
GUEST_DR1_3 = (0x5550, 0x6660, 0x7770)
GUEST_DR6 = DR6_CLEAN | DR6_B[1] | DR6_B[3]
GUEST_DR7 = DR7_FIXED_1 | Dr7.slot_bits(0, "exec", 1)


def guest_registers(g: GuestRun) -> dict[str, int]:
    return {"dr0": g.sym("x"), "dr1": GUEST_DR1_3[0], "dr2": GUEST_DR1_3[1], "dr3": GUEST_DR1_3[2],
            "dr6": GUEST_DR6, "dr7": GUEST_DR7}


def run_guest_owned_drs(g: GuestRun) -> None:
    b0 = DR6_CLEAN | DR6_B[0]
    expect_db_log(g, "host debugging off: the guest's own breakpoint",
                  [("at x, B0", g.sym("x"), b0, "guest_drs")], count_kind="guest_drs")
    host_view = {name: g.m.regs[name] for name in ("dr0", "dr1", "dr2", "dr3", "dr6", "dr7")}
    g.check_values("KVM_GET_DEBUGREGS shows the guest's registers", guest_registers(g), host_view,
                   kind="guest_drs")
    step = GuestDebug(single_step=True)
    g.set_debug(step)
    g.expect_sequence([(f"host single-step {n}", step_trap(g.sym(to))) for n, to in
                       enumerate(("h_1", "h_2", "h_y"), 1)])
    debug = hw_bp(2, g.sym("h_end"), "exec")
    g.set_debug(debug)
    g.expect_sequence([("the host's own breakpoint (DR2)", bp_hit(g.sym("h_end"), 2, debug))])
    g.set_debug(None)
    g.expect("host debugging off again", SYNC)
    g.expect("the guest read its registers", SYNC)
    size = 8 if g.mode == "long" else 4
    stored = {f"dr{n}": g.read_uint(0x1400 + 8 * i, size) for i, n in enumerate((0, 1, 2, 3, 6, 7))}
    g.check_values("the guest reads back its own DR0-DR3, DR6, DR7", guest_registers(g), stored, kind="guest_drs")
    expect_db_log(g, "its own breakpoint works again", [("at x, B0", g.sym("x"), b0, "guest_drs"),
                                                       ("again at x, B0 only", g.sym("x"), b0, "guest_drs")],
                  count_kind="guest_drs")
    g.expect("guest completes", guest_exit())


PRESET_CITE = (
    "SDM §18.2.3 (DR6 is writable; the processor sets B0-B3 per event and never clears BD/BS/BT, but those "
    "are the guest's), APM §13.1.1.3; KVM api.rst KVM_EXIT_DEBUG (dr6 of the exit: its own cause only, as "
    "selftests x86/debug_regs.c checks 0xffff0ff0|Bn and 0xffff4ff0) and KVM_SET_GUEST_DEBUG (host events do "
    "not reach the guest, so its DR6 reads back as it wrote it)."
)
PRESET = DR6_CLEAN | DR6_B[1] | DR6_B[3] | DR6_BD | DR6_BS | DR6_BT


def run_dr6_guest_preset(g: GuestRun) -> None:
    debug = hw_bp(0, g.sym("x"), "exec")
    g.set_debug(debug)
    g.expect_sequence([("host breakpoint: the exit's dr6 is B0 only, not the guest's preset",
                        bp_hit(g.sym("x"), 0, debug, kind="dr6_exit"))])
    g.set_debug(None)
    g.expect("part a: the guest stored its DR6", SYNC)
    g.check_values("part a: the guest reads its preset back", {"dr6": PRESET}, {"dr6": g.read_dr6(0x1000)},
                   kind="guest_dr6")
    g.expect("part b: preset again", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([("host step: BS only", step_trap(g.sym("s_1"), kind="dr6_exit")),
                       ("host step: BS only", step_trap(g.sym("s_2"), kind="dr6_exit"))])
    g.set_debug(None)
    g.expect("part b: stepping done", SYNC)
    g.expect("part b: the guest stored its DR6", SYNC)
    g.check_values("part b: the guest reads its preset back", {"dr6": PRESET}, {"dr6": g.read_dr6(0x1008)},
                   kind="guest_dr6")
    g.expect("guest completes", guest_exit())


DR4_CITE = (
    "SDM §18.2.2 (with CR4.DE = 0 DR4 and DR5 alias DR6 and DR7; with CR4.DE = 1 referencing them raises "
    "#UD), Vol.3A §2.5 (CR4.DE); APM §13.1.1.2; kvm-unit-tests x86/debug.c ('DR4==DR6 with CR4.DE == 0', "
    "'DR4 read got #UD with CR4.DE == 1'). Under host single-step the guest still reads its own DR6."
)


def run_dr4_alias(g: GuestRun) -> None:
    g.expect("CR4.DE = 0: DR4 and DR5 read", SYNC)
    size = 8 if g.mode == "long" else 4
    g.check_values("a write of 0 to DR4 writes DR6 (reads back clean); DR4 reads DR6, DR5 reads DR7",
                   {"dr6_after_dr4_write": DR6_CLEAN, "dr4": DR6_CLEAN | DR6_BS | DR6_B[1], "dr5": DR7_FIXED_1},
                   {"dr6_after_dr4_write": g.read_uint(0x1400, size), "dr4": g.read_uint(0x1408, size),
                    "dr5": g.read_uint(0x1410, size)}, kind="dr4_alias")
    g.expect("CR4.DE = 1: MOV from DR4", SYNC)
    g.check_values("CR4.DE = 1: #UD at the MOV from DR4, which runs again once CR4.DE is clear",
                   {"count_ud": 1, "ud_return": g.sym("ud_at"), "dr4": DR6_CLEAN | DR6_BS | DR6_B[1]},
                   {"count_ud": g.read_uint(COUNT_UD, 1), "ud_return": g.read_slot(UD_RETURN),
                    "dr4": g.read_uint(0x1418, size)}, kind="dr4_alias")
    g.expect("part c: DR6 preset", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([("host step to the MOV from DR4", step_trap(g.sym("p_rd"))),
                       ("host step over it", step_trap(g.sym("p_st"))),
                       ("host step over the store", step_trap(g.sym("p_end")))])
    g.set_debug(None)
    g.expect("part c done", SYNC)
    g.check_values("under host single-step DR4 reads the guest's DR6 (B1), not the host's BS",
                   {"dr4": DR6_CLEAN | DR6_B[1]}, {"dr4": g.read_uint(0x1420, size)}, kind="dr4_alias")
    g.expect("guest completes", guest_exit())


FAMILY = (
    Scenario("guest_owned_drs", "the guest's own DR0-DR3/DR6/DR7 and #DB survive host debugging on and off",
             static("guest_owned_drs"), run_guest_owned_drs, GUEST_DRS_CITE, handlers={DB_VECTOR: "db_recorder"}),
    Scenario("dr6_guest_preset", "DR6 bits the guest presets: exits report only their own cause, the preset "
             "reads back", static("dr6_guest_preset"), run_dr6_guest_preset, PRESET_CITE),
    Scenario("dr4_alias", "DR4/DR5 alias DR6/DR7 with CR4.DE=0, #UD with CR4.DE=1, and under host step",
             static("dr4_alias"), run_dr4_alias, DR4_CITE, handlers={UD_VECTOR: "ud_handler"}),
)
