"""kvmtrace.diff on real /dev/kvm: clean code agrees with the reference in every mode.

These assert what the architecture says (KVM = reference), so they cover the pool
families this host emulates correctly; the host's deviations are in the README's
findings, found by `kvmtrace fuzz`, and the detection of each kind of divergence is
tested on synthetic runs (tests/test_oracle_compare.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("unicorn")

import kvmtrace  # noqa: E402
from kvmtrace import _core  # noqa: E402
from kvmtrace.exceptions import InvalidConfigError  # noqa: E402
from kvmtrace.oracle import cli as oracle_cli  # noqa: E402
from kvmtrace.oracle.generator import ProgramSpec  # noqa: E402
from kvmtrace.oracle.report import DiffReport, Divergence  # noqa: E402
from kvmtrace.oracle.tasks import diff_spec  # noqa: E402

pytestmark = pytest.mark.requires_kvm

# Families whose instructions this host emulates as the architecture says in the mode
# (atomic in long mode includes CMPXCHG16B, string/port/mmio/ss_load the REP, OUT,
# MMIO-store and MOV SS step traps: see the README findings).
CLEAN = {
    "real": ("alu", "unary", "shift", "muldiv", "bits", "move", "stack", "flags", "branch", "atomic", "cpuid", "misc"),
    "protected": ("alu", "unary", "shift", "muldiv", "bits", "move", "stack", "flags", "branch", "atomic", "cpuid",
                  "misc"),
    "long": ("alu", "unary", "shift", "muldiv", "bits", "move", "stack", "flags", "branch", "cpuid", "misc"),
}
CASES = [(mode, family) for mode, families in CLEAN.items() for family in families]


@pytest.mark.parametrize(("mode", "family"), CASES)
def test_clean_generated_code_agrees(mode: str, family: str) -> None:
    for index in range(3):
        report = diff_spec(ProgramSpec(seed=2026, index=index, mode=mode, families=(family,), length=10))
        assert report.agree and report.complete, report
        assert report.kvm_stop == "exit_port" and report.steps > 10


def loop_source(mode: str) -> str:
    acc = {"real": "%ax", "protected": "%eax", "long": "%rax"}[mode]
    cnt = {"real": "%cx", "protected": "%ecx", "long": "%rcx"}[mode]
    return f"""
    _start: mov $7, {cnt}
    again:  add $3, {acc}
            imul {acc}, {acc}
            push {acc}
            call f
            pop {acc}
            loop again
            in $0x84, %al           # a port read: answered the same on both sides
            out %al, $0xf4
    f:      xor %dx, %dx
            ret
    """


@pytest.mark.parametrize("mode", _core.MODES)
def test_a_hand_written_loop_agrees(mode: str) -> None:
    report = kvmtrace.diff(loop_source(mode), mode=mode)
    assert report.agree and report.complete, report
    assert report.first_divergence is None and report.divergences == []
    assert report.steps == report.kvm_rows > 7 * 6


def test_an_mmio_load_is_answered_the_same_way() -> None:
    report = kvmtrace.diff("""
    _start: mov $0x7fff0000, %rbx
            mov (%rbx), %rcx
            add 8(%rbx), %ecx
            out %al, $0xf4
    """, mode="long")
    assert report.agree, report


def test_max_steps_bounds_both_runs() -> None:
    report = kvmtrace.diff("_start: jmp _start\n", mode="long", max_steps=50)
    assert report.agree and not report.complete and report.steps == 50


def test_guests_as_program_elf_and_file(tmp_path: Path) -> None:
    src = loop_source("long")
    prog = kvmtrace.assemble(src, "long")
    assert kvmtrace.diff(prog).agree
    (tmp_path / "g.s").write_text(".code64\n" + src)
    subprocess.run(["as", "--64", "-o", str(tmp_path / "g.o"), str(tmp_path / "g.s")], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-N", "-static", "-Ttext=0x8000", "-e", "_start", "-o",
                    str(tmp_path / "g.elf"), str(tmp_path / "g.o")], check=True, capture_output=True)
    assert kvmtrace.diff(tmp_path / "g.elf").agree
    (tmp_path / "g.S").write_text(src)
    assert kvmtrace.diff(str(tmp_path / "g.S")).agree


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(InvalidConfigError, match="mode"):
        kvmtrace.diff("_start: nop\n", mode="smm")
    with pytest.raises(InvalidConfigError, match="max_steps"):
        kvmtrace.diff("_start: nop\n", max_steps=0)
    with pytest.raises(InvalidConfigError, match="reference"):
        kvmtrace.diff("_start: nop\n", reference="bochs")
    with pytest.raises(InvalidConfigError, match="guest"):
        kvmtrace.diff(12345)  # type: ignore[arg-type]


def cli_app() -> typer.Typer:
    app = typer.Typer()
    oracle_cli.register(app)
    return app


def test_cli_diff_agrees_and_writes_json(tmp_path: Path) -> None:
    guest = tmp_path / "loop.S"
    guest.write_text(loop_source("protected"))
    out = tmp_path / "d.json"
    r = CliRunner().invoke(cli_app(), ["diff", str(guest), "--mode", "protected", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "agree" in r.output
    d = json.loads(out.read_text())
    assert d["agree"] is True and d["mode"] == "protected" and d["first_divergence"] is None


def test_cli_diff_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guest = tmp_path / "g.S"
    guest.write_text("_start: nop\n out %al, $0xf4\n")
    r = CliRunner().invoke(cli_app(), ["diff", str(tmp_path / "missing.S")])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli_app(), ["diff", str(guest), "--mode", "smm"])
    assert r.exit_code == 2 and "mode" in r.output
    # A divergence exits 1 and is tabulated (a synthetic report: the host's are in the README).
    bad = DiffReport(mode="long", steps=3, kvm_rows=2, kvm_stop="exit_port")
    bad.add(Divergence("lost_step", 1, 0x8001, "out 80h,al", "out", {"rip": 0x8003}, {"rip": 0x8004}))
    monkeypatch.setattr("kvmtrace.oracle.differ.diff", lambda *a, **k: bad)
    r = CliRunner().invoke(cli_app(), ["diff", str(guest)])
    assert r.exit_code == 1 and "lost_step" in r.output and "out 80h,al" in r.output
