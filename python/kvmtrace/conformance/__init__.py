"""The KVM debug conformance suite (``kvmtrace conformance``).

Each scenario is a small guest program (assembly in ``guests/``), a
KVM_SET_GUEST_DEBUG configuration and the exits the x86 architecture and the KVM
API say it must produce (see :mod:`kvmtrace.conformance.scenarios` for the
expectations and their citations). The runner executes every (scenario, mode) pair
in a fresh :class:`kvmtrace.Machine` with the raw ``run_once`` primitive. Every
check is judged per aspect (``events``, ``exception``, ``pc``, ``dr6``,
``guest_state``, and the informational ``dr7_report``); a run passes only if every
architectural aspect does. Verdicts: ``pass``, ``fail``, ``unsupported`` (a KVM
capability is absent) or ``error`` (the run itself failed). The differences of all
runs are grouped into findings, one per distinct deviation.

    >>> from kvmtrace.conformance import run_suite
    >>> run = run_suite(["step_hlt"], ["long"])
    >>> run.results[0].verdict
    <Verdict.PASS: 'pass'>

Entry points: :func:`main` (run, print, write JSON / Markdown / JUnit) and
:func:`compare_reports` (what changed between two JSON reports).
"""

from __future__ import annotations

from kvmtrace.conformance.diff import ReportDiff, compare_reports, diff_reports
from kvmtrace.conformance.facts import (
    BP_VECTOR,
    DB_VECTOR,
    DR6_B,
    DR6_BD,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
    DR7_GD,
    GUESTDBG_FLAGS,
    LEN_BITS,
    RW_BITS,
)
from kvmtrace.conformance.findings import Finding, find_findings
from kvmtrace.conformance.hostinfo import cpu_vendor, host_info
from kvmtrace.conformance.junit import junit_xml, write_junit
from kvmtrace.conformance.model import (
    ASPECTS,
    Check,
    Expect,
    Mismatch,
    Observation,
    Verdict,
    compare,
    make_check,
)
from kvmtrace.conformance.render import results_table
from kvmtrace.conformance.report import main, print_run
from kvmtrace.conformance.result import Result, verdict_of
from kvmtrace.conformance.runner import run_scenario, run_suite, select
from kvmtrace.conformance.scenarios import MODES, SCENARIOS, Scenario
from kvmtrace.conformance.suite import SuiteRun, schema

__all__ = [
    "ASPECTS", "BP_VECTOR", "DB_VECTOR", "DR6_B", "DR6_BD", "DR6_BS", "DR6_CLEAN", "DR7_FIXED_1", "DR7_GD",
    "GUESTDBG_FLAGS", "LEN_BITS", "MODES", "RW_BITS", "SCENARIOS",
    "Check", "Expect", "Finding", "Mismatch", "Observation", "ReportDiff", "Result", "Scenario", "SuiteRun",
    "Verdict",
    "compare", "compare_reports", "cpu_vendor", "diff_reports", "find_findings", "host_info", "junit_xml", "main",
    "make_check", "print_run", "results_table", "run_scenario", "run_suite", "schema", "select", "verdict_of",
    "write_junit",
]
