"""The KVM debug conformance suite (``kvmtrace conformance``).

Each scenario is a small guest program (assembly in ``guests/``), a
KVM_SET_GUEST_DEBUG configuration and the exits the x86 architecture and the
KVM API say it must produce (see :mod:`kvmtrace.conformance.scenarios` for the
expectations and their citations). The runner executes every (scenario, mode)
pair in a fresh :class:`kvmtrace.Machine` with the raw ``run_once`` primitive
and gives each a verdict: ``pass``, ``fail`` (expected vs observed exit reason,
exception, pc, dr6, ...), ``unsupported`` (a KVM capability is absent) or
``error`` (the run itself failed).

    >>> from kvmtrace.conformance import run_suite
    >>> run = run_suite(["step_hlt"], ["long"])
    >>> run.results[0].verdict
    <Verdict.PASS: 'pass'>

The CLI entry point is :func:`main`.
"""

from __future__ import annotations

from kvmtrace.conformance.facts import DR6_CLEAN
from kvmtrace.conformance.hostinfo import host_info
from kvmtrace.conformance.model import (
    Check,
    Expect,
    Mismatch,
    Observation,
    Result,
    Verdict,
    compare,
    make_check,
    verdict_of,
)
from kvmtrace.conformance.render import results_table
from kvmtrace.conformance.report import main
from kvmtrace.conformance.runner import run_scenario, run_suite, select
from kvmtrace.conformance.scenarios import MODES, SCENARIOS, Scenario
from kvmtrace.conformance.suite import SuiteRun, schema

__all__ = [
    "DR6_CLEAN",
    "MODES",
    "SCENARIOS",
    "Check",
    "Expect",
    "Mismatch",
    "Observation",
    "Result",
    "Scenario",
    "SuiteRun",
    "Verdict",
    "compare",
    "host_info",
    "main",
    "make_check",
    "results_table",
    "run_scenario",
    "run_suite",
    "schema",
    "select",
    "verdict_of",
]
