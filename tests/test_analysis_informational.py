"""dr7_echo is informational: evaluated, shown and counted, never failing a report.

The KVM API does not promise what kvm_run->debug.arch.dr7 holds (upstream KVM's
emulated single-step and code-breakpoint exits never write it), so a trace whose
only difference from the architecture is the reported DR7 is OK. Synthetic
traces: a real-mode two-instruction loop, single-stepped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kvmtrace
from kvmtrace import GuestDebug
from kvmtrace._core import VECTOR_DB, Dr6, Dr7
from kvmtrace.analysis import CodeImage, analyze, analyze_columns
from kvmtrace.analysis.report import Report
from kvmtrace.cli import run
from kvmtrace.demo import verdicts

#   8000: 40     inc %ax
#   8001: eb fd  jmp 8000
BASE = 0x8000
CODE = bytes.fromhex("40ebfd")
IMAGE = CodeImage([(BASE, CODE)])
STEP_DR6 = Dr6.CLEAN | Dr6.BS
N = 40


def step_columns(n: int = N, reported_dr7: int | None = None) -> dict[str, np.ndarray]:
    """A complete single-step trace of the loop; ``reported_dr7`` None: the configured DR7."""
    dr7 = GuestDebug(single_step=True).dr7 if reported_dr7 is None else reported_dr7
    seq = np.arange(n, dtype=np.uint64)
    return {
        "seq": seq,
        "vcpu": np.zeros(n, dtype=np.uint16),
        "time_ns": seq * np.uint64(1000),
        "pc": np.where(seq % np.uint64(2) == 0, np.uint64(BASE + 1), np.uint64(BASE)),  # after inc / after jmp
        "dr6": np.full(n, STEP_DR6, dtype=np.uint64),
        "dr7": np.full(n, dr7, dtype=np.uint64),
        "exception": np.full(n, VECTOR_DB, dtype=np.uint8),
    }


def report_of(cols: dict[str, np.ndarray]) -> Report:
    return analyze_columns(cols["pc"], cols["dr6"], cols["dr7"], cols["exception"], cols["vcpu"], cols["seq"],
                           debug=GuestDebug(single_step=True), mode="real", memory=IMAGE)


def test_clean_trace_passes_every_rule() -> None:
    rep = report_of(step_columns())
    assert rep.ok and rep.failed == [] and rep.info == []
    assert {r.status for r in rep.rules} == {"pass"}
    assert rep["dr7_echo"].informational
    assert [r.id for r in rep.rules if r.informational] == ["dr7_echo"]


def test_only_dr7_differs_report_is_ok_with_dr7_echo_info() -> None:
    rep = report_of(step_columns(reported_dr7=0))  # what an emulating host reports
    assert rep.ok
    assert rep.failed == []
    r = rep["dr7_echo"]
    assert r.status == "info" and r.ok and r.informational
    assert r.violations == N and r.checked == N
    assert r.status_text == f"info ({N})"
    assert r.examples[0].expected == hex(Dr7.FIXED_1) and r.examples[0].observed == "0x0"
    assert rep.info == [r]
    for other in rep.rules:
        if other.id != "dr7_echo":
            assert other.status == "pass", str(other)
    assert rep.summary().startswith("kvmtrace analysis: OK")
    assert f"informational: dr7_echo ({N})" in rep.summary()
    text = str(rep)
    assert "FAIL" not in text and "INFO  dr7_echo" in text and "(informational)" in text


def test_to_dict_marks_informational_rules() -> None:
    d = json.loads(report_of(step_columns(reported_dr7=0)).to_json())
    assert d["ok"] is True
    rules = {x["id"]: x for x in d["rules"]}
    assert rules["dr7_echo"]["informational"] is True and rules["dr7_echo"]["status"] == "info"
    assert rules["dr7_echo"]["violations"] == N
    assert all(x["informational"] is False for k, x in rules.items() if k != "dr7_echo")
    # the keys the report always had are still there
    assert set(rules["dr6_cause"]) >= {"id", "description", "status", "checked", "violations", "reason", "examples"}


def test_dr6_violation_with_dr7_difference_fails_on_the_dr6_rule_only() -> None:
    cols = step_columns(reported_dr7=0)
    cols["dr6"][7] = STEP_DR6 | Dr6.B0  # a cause bit nothing justifies (DR0 not configured)
    rep = report_of(cols)
    assert not rep.ok
    assert [r.id for r in rep.failed] == ["dr6_cause"]
    assert rep["dr6_cause"].violations == 1 and rep["dr6_cause"].examples[0].index == 7
    assert rep["dr7_echo"].status == "info" and rep["dr7_echo"].violations == N
    assert rep.summary().startswith("kvmtrace analysis: FAIL (1 of 7 rules failed)")


def test_skipped_informational_rule_keeps_its_flag() -> None:
    cols = step_columns(reported_dr7=0)
    rep = analyze_columns(cols["pc"], cols["dr6"], cols["dr7"], cols["exception"])  # no debug configuration
    assert rep["dr7_echo"].status == "skipped" and rep["dr7_echo"].informational


def _rendered(table: object) -> str:
    from rich.console import Console

    console = Console(record=True, width=220)
    console.print(table)
    return console.export_text()


def test_rich_table_and_demo_verdicts_show_info_count() -> None:
    trace = kvmtrace.Trace.from_columns(step_columns(reported_dr7=0), mode="real",
                                        debug=GuestDebug(single_step=True), code_regions=[(BASE, CODE)])
    assert analyze(trace).ok
    for out in (_rendered(analyze(trace).to_rich_table()), _rendered(verdicts(trace))):
        assert "kvmtrace analysis: OK" in out and "FAIL" not in out
        assert f"info ({N})" in out and "dr7_echo (informational)" in out


@pytest.mark.parametrize("dr6_defect, code", [(False, 0), (True, 1)])
def test_cli_analyze_exit_code_ignores_informational_rules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], dr6_defect: bool, code: int) -> None:
    cols = step_columns(reported_dr7=0)
    if dr6_defect:
        cols["dr6"][3] = STEP_DR6 | Dr6.BT
    trace = kvmtrace.Trace.from_columns(cols, mode="real", debug=GuestDebug(single_step=True),
                                        code_regions=[(BASE, CODE)])
    path = tmp_path / "t.parquet"
    trace.to_parquet(path)
    exit_code = run(["analyze", str(path), "--json"])
    out = capsys.readouterr().out
    assert exit_code == code, out
    d = json.loads(out)
    assert d["ok"] is (not dr6_defect)
    assert next(r for r in d["rules"] if r["id"] == "dr7_echo")["status"] == "info"
