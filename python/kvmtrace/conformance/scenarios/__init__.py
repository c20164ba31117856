"""The conformance scenarios: guest program + KVM_SET_GUEST_DEBUG configuration + the
architectural expectation of every exit, with where that expectation comes from.

One module per family (the shared building blocks and the citations of the facts
they rest on are in :mod:`.common`); the registry below is built from the families in
report order.
"""

from __future__ import annotations

from kvmtrace.conformance.facts import MODES
from kvmtrace.conformance.scenarios import (
    bp_interplay,
    breakpoints,
    exits,
    gd,
    guest_dr6,
    guest_drs,
    icebp,
    injection,
    int3,
    interrupts,
    mov_ss,
    mov_ss_db,
    single_step,
    step_hlt,
    user_mode,
)
from kvmtrace.conformance.scenarios.common import (
    DATA_TARGET,
    PIO_PORT,
    SYNC,
    Scenario,
    bp_hit,
    full_source,
    guest_source,
    hw_bp,
    static,
    step_trap,
    use_hw_without_breakpoints,
)

FAMILIES = (
    single_step, user_mode, breakpoints, bp_interplay, int3, gd, guest_dr6, guest_drs, exits, interrupts,
    injection, mov_ss, mov_ss_db, icebp, step_hlt,
)

SCENARIOS: dict[str, Scenario] = {s.id: s for family in FAMILIES for s in family.FAMILY}

__all__ = [
    "DATA_TARGET", "FAMILIES", "MODES", "PIO_PORT", "SCENARIOS", "SYNC", "Scenario", "bp_hit", "full_source",
    "guest_source", "hw_bp", "static", "step_trap", "use_hw_without_breakpoints",
]
