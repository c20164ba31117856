"""The suite's report as JUnit XML for CI systems: one testcase per scenario x mode.

A ``fail`` run is a ``<failure>`` whose message is the first difference and whose text
lists every failing check with its expected and observed exit; ``error`` is an
``<error>``, ``unsupported`` a ``<skipped>``. Aspects, informational differences (the
reported dr7), the findings that explain the run and notes go to ``<system-out>``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from kvmtrace.conformance.findings import explaining
from kvmtrace.conformance.model import Verdict
from kvmtrace.conformance.result import Result

if TYPE_CHECKING:  # only for the annotation: suite.py does not import this module
    from kvmtrace.conformance.suite import SuiteRun

SUITE_NAME = "kvmtrace.conformance"


def _failure_text(r: Result) -> str:
    lines = []
    for c in r.failed_checks:
        lines += [f"{c.label}:", f"  expected: {c.expected.brief()}", f"  observed: {c.observed.brief()}"]
        if c.observed.note and c.observed.note not in lines[-1]:
            lines.append(f"            {c.observed.note}")
        lines += [f"  {m}" for m in c.mismatches]
    return "\n".join(lines)


def _system_out(run: SuiteRun, r: Result) -> str:
    lines = ["aspects: " + ", ".join(f"{a}={s}" for a, s in r.aspects.items())]
    numbers = explaining(run.findings, r.scenario, r.mode)
    lines += [f"finding F{n}: {run.findings[n - 1].title}" for n in numbers]
    info = [(c, m) for c in r.checks for m in c.info]
    if info:
        c, m = info[0]
        lines.append(f"informational: {len(info)} reported dr7 differ (first: {c.label}: {m})")
    if r.vendor_expectation:
        lines.append(f"vendor expectation applied: {r.vendor_expectation}")
    lines += [f"note: {n}" for n in r.notes]
    lines.append(f"cite: {r.cite}")
    return "\n".join(lines)


def _testcase(run: SuiteRun, r: Result) -> ET.Element:
    case = ET.Element("testcase", classname=f"{SUITE_NAME}.{r.scenario}", name=f"{r.scenario}[{r.mode}]",
                      time=f"{r.elapsed_s:.6f}")
    if r.verdict is Verdict.FAIL:
        failed = sorted({m.aspect for c in r.failed_checks for m in c.mismatches})
        el = ET.SubElement(case, "failure", message=r.reason, type=",".join(failed) or "fail")
        el.text = _failure_text(r)
    elif r.verdict is Verdict.ERROR:
        ET.SubElement(case, "error", message=r.reason, type="error")
    elif r.verdict is Verdict.UNSUPPORTED:
        ET.SubElement(case, "skipped", message=r.reason)
    ET.SubElement(case, "system-out").text = _system_out(run, r)
    return case


def junit_xml(run: SuiteRun) -> ET.ElementTree:
    """The JUnit document of a suite run."""
    c = run.counts()
    attrs = {"tests": str(len(run.results)), "failures": str(c["fail"]), "errors": str(c["error"]),
             "skipped": str(c["unsupported"]), "time": f"{run.elapsed_s:.3f}"}
    root = ET.Element("testsuites", {"name": SUITE_NAME, **attrs})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, "timestamp": str(run.host.get("date", "")),
                                              "hostname": str(run.host.get("kernel", "")), **attrs})
    props = ET.SubElement(suite, "properties")
    cpu = run.host.get("cpu", {})
    facts = {"headline": run.headline(), "kernel": run.host.get("kernel"), "cpu.vendor": cpu.get("vendor"),
             "cpu.model": cpu.get("model"), "vendor_expectation": run.vendor_expectation,
             "kvm.vendor_modules": ",".join(run.host.get("kvm", {}).get("vendor_modules") or [])}
    for name, value in facts.items():
        ET.SubElement(props, "property", name=name, value=str(value) if value is not None else "")
    for r in run.results:
        suite.append(_testcase(run, r))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_junit(run: SuiteRun, path: str | os.PathLike[str]) -> None:
    junit_xml(run).write(os.fspath(path), encoding="utf-8", xml_declaration=True)
