"""Architectural conformance checks for ``KVM_EXIT_DEBUG`` traces.

:func:`analyze` takes a recorded trace (columns ``pc``, ``dr6``, ``dr7``,
``exception``, ``vcpu``, ``seq``) plus the guest-debug configuration that
produced it, and checks every event against the x86 debug architecture.  The
column rules are numpy vectorised: no Python loop runs per event.  The rules
that need instruction decoding (``step_completeness`` and parts of
``pc_semantics``) decode each *distinct* pc once with ``iced_x86`` and map the
result back onto the columns.

Rule ids are stable (:data:`RULES` holds one-line descriptions).  "Previous
event" always means the previous event *of the same vCPU*, in trace order (or
``seq`` order when the trace is not sorted by ``seq``).

Event classes
-------------
Only vector-1 (#DB) events are subject to the DR6/DR7 rules.  KVM fills
``kvm_run->debug.arch.dr6/dr7`` only for #DB exits; for #BP (INT3) exits the two
fields keep whatever the previous exit left there (zero on a fresh vCPU), so
they carry no information and are not checked.  A #DB is classified from its
own DR6 and pc:

* *instruction-breakpoint fault*: a ``Bn`` of an enabled exec slot with
  ``DRn == pc`` is set.  Exactly the matching exec ``Bn`` bits are allowed and
  required.  ``BS`` is not allowed: the fault is taken before the instruction
  executes, so a step trap landing on a breakpointed instruction is a separate,
  earlier event at the same pc;
* *general-detect fault*: ``BD`` set and general detect configured: exactly
  ``BD`` (KVM synthesises ``DR6_BD | DR6_ACTIVE_LOW``);
* *trap*, otherwise: allowed are ``BS`` (if single-stepping) and the ``Bn`` of
  every enabled data (write/rw/io) slot; ``BS`` is required while
  single-stepping (a data hit during a step reports ``BS|Bn``).

kvmtrace resumes from an instruction fault (exec or GD breakpoint, INT3) by
single-stepping once with that trigger disarmed (exec slot's L/G bits or GD
cleared from DR7).  So the event that directly follows a fault on the same vCPU
may carry ``BS`` even without single-step, and its DR7 may be the temporary
one; both are accepted for that event only.

Rules
-----
Each rule is one module of :mod:`kvmtrace.analysis.rules`, whose docstring
states exactly what it checks: ``dr6_fixed_bits``, ``dr6_cause``,
``dr6_no_accumulation``, ``exception_vector``, ``pc_semantics``,
``step_completeness`` and ``dr7_echo``.  ``dr7_echo`` is *informational*: the
KVM API does not promise what ``kvm_run->debug.arch.dr7`` holds, so its
violations are shown and counted (status ``"info"``) but never fail a report.

Layout
------
``report`` (Violation, RuleResult, Report), ``code`` (CodeImage, decoding),
``config`` (the debug configuration, :func:`expected_dr7`), ``classify`` (event
classes), ``view`` (the sorted trace and shared helpers), ``chains``
(previous-event chains per vCPU), ``context`` (per-chunk arrays), ``collect``
(violations per rule), ``engine`` (chunked evaluation), ``rules/`` (one module
per rule), ``entry`` (:func:`analyze`, :func:`analyze_columns`).
"""

from __future__ import annotations

from kvmtrace._core import VECTOR_BP, VECTOR_DB, Dr6, Dr7
from kvmtrace.analysis.code import CodeImage
from kvmtrace.analysis.config import expected_dr7
from kvmtrace.analysis.entry import analyze, analyze_columns
from kvmtrace.analysis.report import Report, RuleResult, Violation
from kvmtrace.analysis.rules import RULES

# Aliases of the core's x86 facts, kept for callers of the earlier module.
DR6_B0 = Dr6.B0
DR6_B1 = Dr6.B1
DR6_B2 = Dr6.B2
DR6_B3 = Dr6.B3
DR6_BD = Dr6.BD
DR6_BS = Dr6.BS
DR6_BT = Dr6.BT
DR6_RTM = Dr6.RTM  # active low: reads 1 unless the #DB hit inside an RTM region
#: Value of DR6 with no cause recorded (bits 4-11, 16-31 read 1, bit 12 reads 0).
DR6_FIXED_ONES = Dr6.CLEAN
#: Bits of DR6 with a fixed value: 4-12 and 16-31 (RTM included).
DR6_FIXED_MASK = Dr6.FIXED_MASK
#: Bits that record the cause of a #DB: B0-B3, BD, BS, BT.
DR6_CAUSE_MASK = Dr6.CAUSE_MASK
DR7_FIXED_ONES = Dr7.FIXED_1  # bit 10 reads as 1
DR7_GD = Dr7.GD

__all__ = [
    "analyze",
    "analyze_columns",
    "Report",
    "RuleResult",
    "Violation",
    "CodeImage",
    "RULES",
    "DR6_FIXED_ONES",
    "DR6_FIXED_MASK",
    "DR6_CAUSE_MASK",
    "DR6_B0",
    "DR6_B1",
    "DR6_B2",
    "DR6_B3",
    "DR6_BD",
    "DR6_BS",
    "DR6_BT",
    "DR6_RTM",
    "DR7_FIXED_ONES",
    "DR7_GD",
    "VECTOR_DB",
    "VECTOR_BP",
    "expected_dr7",
]
