"""``dr7_echo`` (informational): #DB events report ``dr7 == configured | 0x400``;
for a GD fault ``(configured & ~GD) | 0x400`` is accepted too (the CPU clears
GD on #DB), and for the step past a fault the temporary DR7 the tracer programs
for it (the exec slot's enable bits, or GD, cleared).

Informational because the KVM API promises nothing about it: ``api.rst``
documents ``kvm_run->debug.arch`` only as "architecture specific debug
information".  Upstream KVM copies the guest DR7 there only on hardware #DB
intercepts (VMX ``handle_exception_nmi``, SVM ``db_interception``); the exits it
synthesises while emulating (``kvm_vcpu_do_singlestep``,
``kvm_vcpu_check_code_breakpoint``) never write it, so a host that emulates the
guest reports whatever the field held before (0 on a fresh vCPU).  A difference
is shown and counted (status ``"info"``) but does not fail the report."""

from __future__ import annotations

import numpy as np

from kvmtrace._core import Dr7
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.config import SLOTS, U64
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView


def _lowest_slot_enable(slots: int) -> int:
    """DR7 enable pair (Ln|Gn) of the lowest slot set in a 4-bit slot mask (0 for none)."""
    return Dr7.enable_mask((slots & -slots).bit_length() - 1) if slots else 0


#: The step past an exec fault runs with the lowest matching slot disarmed; indexed by DR6 B0-B3.
_DISARMED = np.array([_lowest_slot_enable(s) for s in range(1 << SLOTS)], dtype=np.uint64)


def check(c: Chunk, acc: Collector) -> None:
    cfg = c.config
    exp = cfg.dr7 | Dr7.FIXED_1
    no_gd = np.uint64(exp & ~Dr7.GD)
    dr7_c = c.view.dr7[c.lo:c.hi]
    ok = dr7_c == np.uint64(exp)
    if cfg.general_detect and exp & Dr7.GD:
        ok |= c.gd_c & (dr7_c == no_gd)
    if c.stepover:
        if cfg.exec_slots:
            v1 = np.uint64(exp) & ~_DISARMED[c.match_p]
            ok |= c.xf_p & ((dr7_c == v1) | (dr7_c == (v1 & np.uint64(~Dr7.GD & U64))))
        if cfg.general_detect:
            ok |= c.gf_p & (dr7_c == no_gd)
    acc.add(c.lo, [("dr7", c.only_db(~ok), c.prev_any)], c.n_db)


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    cfg = view.config
    exp = cfg.dr7 | Dr7.FIXED_1
    got = int(view.dr7[i])
    msg = f"differs in {got ^ exp:#x}"
    if not cfg.dr7_given:
        msg += " (DR7 derived from the breakpoints)"
    return view.violation(i, "dr7", hex_or_dash(exp), hex_or_dash(got), msg)


RULE = Rule(
    "dr7_echo",
    "reported DR7 equals the configured DR7 (with bit 10 set); informational: KVM does not promise it",
    check, describe, informational=True,
    needs_prev=lambda view: view.stepping_over,
)
