"""The conformance suite's verdict per aspect, findings, JUnit and report comparison, on synthetic
observations (no KVM): the logic is tested on known inputs, never on what a host does."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from kvmtrace._core import Dr6
from kvmtrace.conformance import (
    DR6_B,
    DR6_BS,
    DR6_CLEAN,
    DR7_FIXED_1,
    Expect,
    Observation,
    Result,
    SuiteRun,
    Verdict,
    compare_reports,
    diff_reports,
    find_findings,
    junit_xml,
    make_check,
    print_run,
    schema,
    verdict_of,
)
from kvmtrace.conformance.diff import load_report
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.result import combine_aspects
from kvmtrace.conformance.scenarios import SYNC, bp_hit, hw_bp, step_trap
from kvmtrace.exceptions import InvalidConfigError, UnsupportedError

VALIDATOR = jsonschema.Draft202012Validator
STEP = DR6_CLEAN | DR6_BS


def step_obs(pc: int, dr6: int = STEP, dr7: int | None = DR7_FIXED_1) -> Observation:
    return Observation("debug", exception=1, pc=pc, dr6=dr6, dr7=dr7)


def result(scenario: str, mode: str, checks: list, cite: str = "SDM") -> Result:  # type: ignore[type-arg]
    verdict, why = verdict_of(checks)
    return Result(scenario, mode, verdict, checks, reason=why, cite=cite)


# ----------------------------------------------------------------------------
# Aspects and verdicts
# ----------------------------------------------------------------------------

def test_dr7_is_informational_never_a_failure() -> None:
    c = make_check("step", step_trap(0x8001), step_obs(0x8001, dr7=0))
    assert c.ok and not c.mismatches
    assert [(m.field, m.expected, m.observed) for m in c.info] == [("dr7", DR7_FIXED_1, 0)]
    assert c.aspects() == {"events": "pass", "exception": "pass", "pc": "pass", "dr6": "pass",
                           "dr7_report": "info"}
    verdict, why = verdict_of([c])
    assert verdict is Verdict.PASS and "informational" in why


def test_each_aspect_fails_on_its_own_field() -> None:
    exp = bp_hit(0x8001, 0, hw_bp(0, 0x8001, "exec"))
    cases = {
        "exception": Observation("debug", exception=3, pc=0x8001, dr6=DR6_CLEAN | DR6_B[0], dr7=0x401),
        "pc": Observation("debug", exception=1, pc=0x8002, dr6=DR6_CLEAN | DR6_B[0], dr7=0x401),
        "dr6": Observation("debug", exception=1, pc=0x8001, dr6=DR6_CLEAN | DR6_B[0] | DR6_BS, dr7=0x401),
        "events": Observation("hlt", pc=0x8003),
    }
    for aspect, obs in cases.items():
        c = make_check(aspect, exp, obs)
        assert not c.ok
        assert {m.aspect for m in c.mismatches} == {aspect}
        assert c.aspects()[aspect] == "fail"
    # A different exit reason judges only the events aspect.
    assert make_check("x", exp, cases["events"]).aspects() == {"events": "fail"}


def test_guest_state_aspect_and_decimal_counts() -> None:
    exp = Expect("exit", code=0, guest={"count_db": 1, "dr6": DR6_CLEAN})
    c = make_check("guest", exp, Observation("exit", code=0, guest={"count_db": 0, "dr6": DR6_CLEAN}))
    assert {m.aspect for m in c.mismatches} == {"guest_state"}
    assert str(c.mismatches[0]) == "guest.count_db: expected 1, observed 0"


def test_run_aspects_combine_and_verdict_needs_every_architectural_aspect() -> None:
    ok = make_check("a", step_trap(0x8001), step_obs(0x8001, dr7=0))
    bad_dr6 = make_check("b", step_trap(0x8002), step_obs(0x8002, dr6=STEP | DR6_B[0]))
    aspects = combine_aspects([ok, bad_dr6])
    assert aspects["dr6"] == "fail" and aspects["pc"] == "pass" and aspects["dr7_report"] == "info"
    assert aspects["guest_state"] == "n/a"
    r = result("s", "long", [ok, bad_dr6])
    assert r.verdict is Verdict.FAIL and "(dr6)" in r.reason
    assert result("s", "long", [ok]).verdict is Verdict.PASS


def test_pc_range_expectation() -> None:
    exp = Expect("debug", exception=1, dr6=STEP, pc_in=(0x8040, 0x8050), kind="irq_step")
    assert make_check("in", exp, step_obs(0x8047)).ok
    c = make_check("out", exp, step_obs(0x8050))
    assert [m.field for m in c.mismatches] == ["pc"] and "0x8040..0x8050" in str(c.mismatches[0])


# ----------------------------------------------------------------------------
# Findings
# ----------------------------------------------------------------------------

def _data_bp_missing(scenario: str, mode: str, pc: int) -> Result:
    debug = hw_bp(0, 0x1100, "write", 1)
    missing = make_check("hit", bp_hit(pc, 0, debug, kind="data_bp"), Observation("missing"))
    sync = make_check("end", SYNC, Observation("hlt", pc=pc + 4))
    return result(scenario, mode, [missing, sync])


def synthetic_results() -> list[Result]:
    out = [_data_bp_missing("hw_write_bp", m, 0x8010 + i) for i, m in enumerate(("real", "protected", "long"))]
    out.append(_data_bp_missing("guest_dr6_preserved", "long", 0x8020))
    # A data breakpoint that never comes is a data breakpoint that never fires, also deferred by MOV SS.
    debug = hw_bp(0, 0x1100, "rw", 2)
    out.append(result("mov_ss_shadow", "real", [
        make_check("mov ss", bp_hit(0x8030, 0, debug, kind="mov_ss_data_bp"), Observation("hlt", pc=0x8034)),
        make_check("extra", Expect("none", kind="mov_ss_step"), step_obs(0x8031)),
    ]))
    # The same instruction is a KVM internal error whatever the scenario expected there.
    for scenario, mode in (("sw_bp_int3", "protected"), ("int_variants", "long")):
        out.append(result(scenario, mode, [
            make_check("int3", Expect("debug", exception=3, pc=0x8001, kind="sw_bp"),
                       Observation("internal_error", pc=0x8001, note="suberror 1", insn="int3")),
            make_check("after", SYNC, Observation("not_reached", note="the vCPU stopped earlier")),
        ]))
    # dr7 reported as 0: informational, across every kind of exit.
    out.append(result("single_step", "long", [make_check("s", step_trap(0x8001), step_obs(0x8001, dr7=0))]))
    out.append(result("hw_exec_bp", "long", [make_check("b", bp_hit(0x8001, 1, hw_bp(1, 0x8001, "exec")),
                                                        Observation("debug", 1, 0x8001, DR6_CLEAN | DR6_B[1], 0))]))
    return out


def test_findings_group_by_aspect_kind_and_pattern_not_by_run() -> None:
    findings = {f.id: f for f in find_findings(synthetic_results())}
    assert set(findings) == {"data_bp.events.missing", "mov_ss_step.events.extra_debug", "internal_error.int3",
                             "dr7_report.zero"}
    data = findings["data_bp.events.missing"]
    assert data.title == "data breakpoints never fire" and data.aspect == "events"
    assert data.runs == [("hw_write_bp", "real"), ("hw_write_bp", "protected"), ("hw_write_bp", "long"),
                         ("guest_dr6_preserved", "long"), ("mov_ss_shadow", "real")]
    assert "SDM §18.3.1.2" in data.cite
    assert findings["mov_ss_step.events.extra_debug"].title == "MOV SS / POP SS do not suppress the single-step trap"
    int3 = findings["internal_error.int3"]
    assert int3.runs == [("sw_bp_int3", "protected"), ("int_variants", "long")]
    assert int3.checks == 2  # the not_reached checks after the stop are explained by it, not counted
    dr7 = findings["dr7_report.zero"]
    assert dr7.informational and dr7.runs == [("single_step", "long"), ("hw_exec_bp", "long")]


def test_every_failing_run_is_explained_and_order_is_architectural_first() -> None:
    results = synthetic_results()
    findings = find_findings(results)
    assert [f.informational for f in findings] == [False, False, False, True]
    assert len(findings[0].runs) >= len(findings[1].runs)
    for r in results:
        if r.verdict is Verdict.FAIL:
            assert any((r.scenario, r.mode) in f.runs for f in findings if not f.informational), r.scenario


def test_dr6_pattern_names_the_extra_bit() -> None:
    r = result("exit_dr6_no_accumulation", "long",
               [make_check("step", step_trap(0x8003), step_obs(0x8003, dr6=STEP | DR6_B[2]))])
    (f,) = find_findings([r])
    assert f.id == "step.dr6.dr6+B2" and f.aspect == "dr6"
    assert "also has B2" in f.title and "(BS)" in f.expected and "(B2|BS)" in f.observed


def test_unknown_kind_gets_a_generic_title() -> None:
    r = result("x", "real", [make_check("t", Expect("sync", kind="no_such_kind"), Observation("timeout"))])
    (f,) = find_findings([r])
    assert f.id == "no_such_kind.events.timeout" and "no progress" in f.title


def test_summary_headline_and_dr6_figure() -> None:
    run = SuiteRun(host={"kernel": "k", "cpu": {"vendor": "AuthenticAMD", "model": "m"}, "kvm": {}},
                   results=synthetic_results())
    correct, checked = run.dr6_figure()
    assert (correct, checked) == (2, 2)  # the two delivered debug exits with a DR6 expectation
    assert run.headline() == "3 deviations found; DR6 correct in 2 of 2 delivered exits (+1 informational)"
    summary = run.summary()
    assert summary["findings"] == 3 and summary["dr6"] == {"exits_checked": 2, "correct": 2}
    assert summary["runs"] == len(run.results)


def test_report_with_findings_validates() -> None:
    run = SuiteRun(host={"kernel": "k", "cpu": {"vendor": "AuthenticAMD", "model": "m"}, "kvm": {}},
                   results=synthetic_results())
    run.results[0].vendor_expectation = "amd"
    doc = json.loads(run.to_json())
    VALIDATOR(schema()).validate(doc)
    assert doc["summary"]["vendor_expectation"] == "amd"
    assert doc["findings"][0]["scenarios"][0] == {"scenario": "hw_write_bp", "mode": "real"}
    r = doc["results"][0]
    assert r["aspects"] == {"events": "fail", "exception": "n/a", "pc": "n/a", "dr6": "n/a",
                            "guest_state": "n/a", "dr7_report": "n/a"}
    assert r["detail"]["checks"][0]["expected"]["kind"] == "data_bp"
    bad = json.loads(run.to_json())
    bad["results"][0]["aspects"]["dr7_report"] = "fail"  # dr7 can never fail
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR(schema()).validate(bad)


def test_terminal_report_matrix_then_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    run = SuiteRun(host={"kernel": "k", "cpu": {"vendor": "AuthenticAMD", "model": "m"}, "kvm": {}},
                   results=synthetic_results())
    console = Console(record=True, width=160)
    print_run(run, console)
    text = console.export_text()
    headline = "3 deviations found; DR6 correct in 2 of 2 delivered exits"
    assert text.index("hw_write_bp") < text.index(headline) < text.index("data breakpoints never fire")
    assert "F1 [events] data breakpoints never fire - explains 5 runs" in text
    assert "F4 [dr7_report] kvm_run->debug.arch.dr7 is reported as 0 - seen in 2 runs (long), informational" in text
    assert "F2 [events] INT3 is a KVM internal error (emulation failure) - explains 2 runs (protected, long)" in text
    assert "expected:" not in text  # details only with verbose
    console = Console(record=True, width=160)
    print_run(run, console, verbose=True)
    text = console.export_text()
    assert "expected:" in text and "events=fail" in text


def test_markdown_matrix_headline_findings() -> None:
    run = SuiteRun(host={"kernel": "k", "cpu": {"vendor": "AuthenticAMD", "model": "m"}, "kvm": {}},
                   results=synthetic_results())
    md = run.markdown()
    assert md.startswith("| scenario | real | protected | long |")
    assert "| hw_write_bp | fail (1/2) F1 | fail (1/2) F1 | fail (1/2) F1 |" in md
    assert "**3 deviations found" in md and "| F1 | data breakpoints never fire | events | 5 |" in md
    assert "| single_step | - | - | pass (1/1) |" in md  # informational findings stay out of the matrix


# ----------------------------------------------------------------------------
# JUnit
# ----------------------------------------------------------------------------

def test_junit_one_testcase_per_run_with_expected_and_observed() -> None:
    results = synthetic_results()
    results.append(Result("single_step", "real", Verdict.UNSUPPORTED, reason="KVM_GUESTDBG_BLOCKIRQ is absent"))
    results.append(Result("icebp", "real", Verdict.ERROR, reason="AssemblerError: x"))
    run = SuiteRun(host={"kernel": "k", "cpu": {"vendor": "v", "model": "m"}, "kvm": {}, "date": "d"},
                   results=results)
    root = ET.fromstring(ET.tostring(junit_xml(run).getroot()))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(results) == int(suite.get("tests", "0"))
    assert suite.get("failures") == str(run.counts()["fail"]) and suite.get("skipped") == "1"
    assert suite.get("errors") == "1"
    first = cases[0]
    assert first.get("name") == "hw_write_bp[real]" and first.get("classname") == "kvmtrace.conformance.hw_write_bp"
    failure = first.find("failure")
    assert failure is not None and failure.get("type") == "events"
    assert "expected: debug exc=1 pc=0x8010" in (failure.text or "") and "observed: missing" in (failure.text or "")
    out = first.findtext("system-out") or ""
    assert "finding F1: data breakpoints never fire" in out and "aspects: events=fail" in out
    passed = next(c for c in cases if c.get("name") == "single_step[long]")
    assert passed.find("failure") is None
    assert "informational: 1 reported dr7 differ (first: s: dr7" in (passed.findtext("system-out") or "")
    assert cases[-2].find("skipped") is not None and cases[-1].find("error") is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["headline"] == run.headline()


# ----------------------------------------------------------------------------
# Comparing two reports
# ----------------------------------------------------------------------------

def _doc(results: list[Result], kernel: str = "6.18") -> dict:  # type: ignore[type-arg]
    run = SuiteRun(host={"kernel": kernel, "cpu": {"vendor": "AuthenticAMD", "model": "m"}, "kvm": {"api_version": 12},
                         "date": "now"}, results=results)
    return json.loads(run.to_json())


def test_diff_same_report_is_no_change() -> None:
    a = _doc(synthetic_results())
    b = _doc(synthetic_results())
    b["host"]["date"] = "later"  # not a host fact
    assert not diff_reports(a, b).changed


def test_diff_verdicts_findings_and_host_facts() -> None:
    before = synthetic_results()
    after = [r for r in before if r.scenario != "mov_ss_shadow"]
    fixed = make_check("hit", bp_hit(0x8010, 0, hw_bp(0, 0x1100, "write", 1), kind="data_bp"),
                       Observation("debug", 1, 0x8010, DR6_CLEAN | DR6_B[0], 0x10401))
    after[0] = result("hw_write_bp", "real", [fixed])
    d = diff_reports(_doc(before), _doc(after, kernel="6.19"))
    assert ("hw_write_bp", "real", "fail", "pass") in d.verdicts
    assert ("mov_ss_shadow", "real", "fail", None) in d.verdicts
    assert [f["id"] for f in d.gone] == ["mov_ss_step.events.extra_debug"] and not d.appeared
    assert [(i, a, b) for i, _, a, b in d.runs_changed] == [("data_bp.events.missing", 5, 3)]
    assert d.host == [("kernel", "6.18", "6.19")]
    d2 = diff_reports(_doc(after), _doc(before))
    assert [f["id"] for f in d2.appeared] == ["mov_ss_step.events.extra_debug"]


def test_compare_reports_exit_codes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(_doc(synthetic_results())))
    b.write_text(json.dumps(_doc(synthetic_results())))
    c.write_text(json.dumps(_doc(synthetic_results()[1:], kernel="7.0")))
    console = Console(record=True, width=160)
    assert compare_reports(a, b, console) == 0
    assert "no change" in console.export_text()
    console = Console(record=True, width=160)
    assert compare_reports(a, c, console) == 1
    text = console.export_text()
    assert "verdict  hw_write_bp [real]: fail -> not run" in text and "host kernel: '6.18' -> '7.0'" in text
    (tmp_path / "bad.json").write_text("{not json")
    console = Console(record=True, width=160)
    assert compare_reports(a, tmp_path / "bad.json", console) == 2
    assert "is not JSON" in console.export_text()
    assert compare_reports(a, tmp_path / "missing.json", Console(file=io.StringIO())) == 2
    with pytest.raises(InvalidConfigError, match="not a kvmtrace conformance report"):
        (tmp_path / "other.json").write_text("[1, 2]")
        load_report(tmp_path / "other.json")


def test_module_entry_point_compares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kvmtrace.conformance.__main__ import cli

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_doc(synthetic_results())))
    b.write_text(json.dumps(_doc(synthetic_results(), kernel="7.0")))
    assert cli(["--compare", str(a), str(a)]) == 0
    assert cli(["--compare", str(a), str(b)]) == 1
    assert "host kernel" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# Vendor-dependent expectations
# ----------------------------------------------------------------------------

class _NoMachine:
    mode = "long"


def test_vendor_expectation_is_chosen_and_noted() -> None:
    for vendor, want in (("intel", 0), ("amd", 1)):
        g = GuestRun(_NoMachine(), None, None, vendor=vendor)  # type: ignore[arg-type]
        assert g.by_vendor(intel=0, amd=1, why="code #DB after MOV SS") == want
        assert g.vendor_expectation == vendor and "expectation applied" in g.notes[0]
    g = GuestRun(_NoMachine(), None, None, vendor=None)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedError, match="CPU vendor"):
        g.by_vendor(intel=0, amd=1, why="x")


def test_cause_mask_from_core() -> None:
    # The findings' DR6 patterns use the core's cause mask: B0-B3, BD, BS, BT.
    assert Dr6.CAUSE_MASK == DR6_B[0] | DR6_B[1] | DR6_B[2] | DR6_B[3] | Dr6.BD | Dr6.BS | Dr6.BT


@pytest.mark.requires_kvm
def test_main_writes_every_report(tmp_path: Path) -> None:
    from kvmtrace.conformance import main

    js, md, xml = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.xml"
    console = Console(record=True, width=200)
    rc = main(["step_hlt", "hw_exec_bp"], ["real", "long"], js, console, md, verbose=True, junit_path=xml)
    doc = json.loads(js.read_text())
    VALIDATOR(schema()).validate(doc)
    assert rc == (1 if doc["summary"]["fail"] or doc["summary"]["error"] else 0)
    assert doc["summary"]["runs"] == 4 and md.read_text().startswith("| scenario |")
    cases = ET.parse(xml).getroot().findall("./testsuite/testcase")
    assert sorted(c.get("name") for c in cases) == ["hw_exec_bp[long]", "hw_exec_bp[real]", "step_hlt[long]",
                                                    "step_hlt[real]"]
    text = console.export_text()
    assert "deviation" in text and "aspects" in text  # headline, and the verbose table
