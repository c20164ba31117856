"""The MOV SS / POP SS shadow and debug exceptions."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.scenarios.common import (
    DATA_TARGET,
    SYNC,
    Scenario,
    bp_hit,
    hw_bp,
    static,
    step_trap,
)

MOV_SS_CITE = (
    "SDM Vol.3A §6.8.3 Masking Exceptions and Interrupts When Switching Stacks (after MOV SS / POP SS, "
    "debug exceptions - single-step traps and data breakpoints - are inhibited until the boundary after "
    "the next instruction; the data breakpoint of the MOV SS load is then reported), §18.3.1.4; APM §8.2.2 "
    "and Vol.3 MOV/POP (SS loads inhibit #DB for one instruction); KVM api.rst KVM_EXIT_DEBUG. POP SS does "
    "not exist in 64-bit mode."
)


def run_mov_ss_shadow(g: GuestRun) -> None:
    g.expect("setup", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to MOV SS", step_trap(g.sym("mss"))),
        ("no trap after MOV SS: the next one follows the instruction after it",
         step_trap(g.sym("mss_next"), kind="mov_ss_step")),
        ("stepping goes on normally", step_trap(g.sym("mss_next2"))),
    ])
    g.set_debug(None)
    g.expect("part a done", SYNC)
    if g.has("pss"):
        g.set_debug(GuestDebug(single_step=True))
        g.expect_sequence([
            ("step to PUSH SS", step_trap(g.sym("pss_push"))),
            ("step to POP SS", step_trap(g.sym("pss"))),
            ("no trap after POP SS: the next one follows the instruction after it",
             step_trap(g.sym("pss_next"), kind="mov_ss_step")),
            ("stepping goes on normally after POP SS", step_trap(g.sym("pss_next2"))),
        ])
        g.set_debug(None)
    g.expect("part b done", SYNC)
    debug = hw_bp(0, DATA_TARGET, "rw", 2)
    g.set_debug(debug)
    g.expect_sequence([
        ("data breakpoint on the MOV SS load is reported after the next instruction",
         bp_hit(g.sym("mssm_next"), 0, debug, kind="mov_ss_data_bp")),
        ("part c done", SYNC),
    ])

FAMILY = (
    Scenario("mov_ss_shadow", "MOV SS / POP SS delay the step trap and the data breakpoint",
             static("mov_ss_shadow"), run_mov_ss_shadow, MOV_SS_CITE),
)
