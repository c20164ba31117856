"""The program generator, shrinking and class grouping, without /dev/kvm."""

from __future__ import annotations

import iced_x86 as ix
import pytest

from kvmtrace import _core
from kvmtrace.exceptions import InvalidConfigError
from kvmtrace.oracle.campaign import Campaign, CampaignReport
from kvmtrace.oracle.differ import guest_mode
from kvmtrace.oracle.families import FAMILIES, MEM_WINDOW
from kvmtrace.oracle.generator import DATA_PAGE, ProgramSpec, generate
from kvmtrace.oracle.pool import Outcome
from kvmtrace.oracle.shrink import Budget, ddmin
from kvmtrace.program import DEFAULT_LOAD_ADDR, assemble

SANDBOX_BASES = {ix.Register.BX, ix.Register.EBX, ix.Register.RBX, ix.Register.BP, ix.Register.EBP, ix.Register.RBP}


def decoded(spec: ProgramSpec) -> list[ix.Instruction]:
    gp = generate(spec)
    return list(ix.Decoder(gp.bits, gp.code(), ip=DEFAULT_LOAD_ADDR))


@pytest.mark.parametrize("mode", _core.MODES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_encodes_valid_sandboxed_code(mode: str, family: str) -> None:
    for index in range(6):
        spec = ProgramSpec(seed=1, index=index, mode=mode, families=(family,), length=6)
        code = decoded(spec)
        assert code and not any(i.is_invalid for i in code)
        assert code[-1].mnemonic == ix.Mnemonic.OUT and code[-1].immediate8 == _core.EXIT_PORT
        for ins in code:
            assert not ins.is_privileged or ins.mnemonic in (ix.Mnemonic.IN, ix.Mnemonic.OUT, ix.Mnemonic.INSB,
                                                              ix.Mnemonic.INSW, ix.Mnemonic.INSD, ix.Mnemonic.OUTSB,
                                                              ix.Mnemonic.OUTSW, ix.Mnemonic.OUTSD, ix.Mnemonic.HLT,
                                                              ix.Mnemonic.STI, ix.Mnemonic.CLI), ins
            for k in range(ins.op_count):
                if ins.op_kind(k) == ix.OpKind.MEMORY and ins.mnemonic != ix.Mnemonic.LEA:
                    assert ins.memory_base in SANDBOX_BASES, f"{ins} leaves the sandbox"
                    assert 0 <= ins.memory_displacement < 0x100, ins
            if ins.is_jcc_short_or_near or ins.is_jmp_short_or_near or ins.is_call_near:
                assert ins.near_branch_target > ins.ip, f"{ins}: branches only go forward"


def test_programs_are_a_function_of_their_spec() -> None:
    a = ProgramSpec(seed=42, index=3, mode="long")
    assert generate(a).code() == generate(a).code()
    assert generate(a).code() != generate(ProgramSpec(seed=42, index=4, mode="long")).code()
    assert ProgramSpec.from_dict(a.to_dict()) == a


def test_dropping_blocks_keeps_a_valid_program_and_retargets_branches() -> None:
    spec = ProgramSpec(seed=5, index=0, mode="protected", families=("branch",), length=8)
    gp = generate(spec)
    every = gp.kept()
    for k in every:
        smaller = gp.with_keep(tuple(b for b in every if b != k))
        code = list(ix.Decoder(gp.bits, smaller.code(), ip=DEFAULT_LOAD_ADDR))
        ends = {i.ip for i in code} | {code[-1].next_ip}
        for ins in code:
            if ins.is_jcc_short_or_near or ins.is_jmp_short_or_near or ins.is_call_near:
                assert ins.near_branch_target in ends
    assert len(gp.with_keep(()).code()) < len(gp.code())


def test_the_reproducer_assembles_to_the_same_bytes_and_names_its_mode() -> None:
    gp = generate(ProgramSpec(seed=9, index=1, mode="real"))
    text = gp.reproducer("divergence: test")
    assert guest_mode(text) == "real"
    assert assemble(text, "real").segments[0].data == gp.code()


def test_the_sandbox_registers_are_set_up_first() -> None:
    code = decoded(ProgramSpec(seed=0, index=0, mode="long", length=0))
    assert code[0].op0_register == ix.Register.RBX and code[0].immediate64 == DATA_PAGE
    assert MEM_WINDOW <= 0x100


def test_bad_specs_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="families"):
        generate(ProgramSpec(seed=0, index=0, families=("nope",)))
    with pytest.raises(InvalidConfigError, match="mode"):
        generate(ProgramSpec(seed=0, index=0, mode="smm"))


def test_ddmin_finds_a_one_minimal_subset() -> None:
    def fails(keep: list[int]) -> bool:
        return 3 in keep and 11 in keep

    assert ddmin(list(range(20)), fails, Budget(500)) == [3, 11]
    assert ddmin(list(range(20)), lambda keep: True, Budget(500)) == []
    small_budget = Budget(3)
    ddmin(list(range(20)), fails, small_budget)
    assert small_budget.used == 3


def divergence(kind: str, mnemonic: str, step: int = 5) -> dict[str, object]:
    return {"kind": kind, "step": step, "pc": 0x8000, "instruction": mnemonic, "mnemonic": mnemonic,
            "expected": {}, "observed": {}, "registers": [], "note": ""}


def test_divergences_are_grouped_by_kind_and_mnemonic() -> None:
    specs = [ProgramSpec(seed=1, index=i) for i in range(5)]
    results = [
        Outcome(0, "ok", {"spec": specs[0].to_dict(), "steps": 40, "agree": False,
                          "divergences": [divergence("lost_step", "out"), divergence("lost_step", "out", 9)]}),
        Outcome(1, "ok", {"spec": specs[1].to_dict(), "steps": 20, "agree": False,
                          "divergences": [divergence("lost_step", "out"), divergence("kvm_error", "cmpxchg16b")]}),
        Outcome(2, "ok", {"spec": specs[2].to_dict(), "steps": 30, "agree": True, "divergences": []}),
        Outcome(3, "lost", reason="worker process died (exit code -9)"),
        Outcome(4, "error", reason="KvmIoctlError: boom"),
    ]

    class FakePool:
        def map(self, task, payloads):  # type: ignore[no-untyped-def]
            return iter(results)

    report = CampaignReport(programs=5, seed=1, modes=["long"])
    Campaign(report, FakePool(), None).run(specs, shrink=False, task="unused")
    classes = {(c["kind"], c["mnemonic"]): c for c in report.classes}
    out = classes[("lost_step", "out")]
    assert (out["count"], out["programs"]) == (3, 2)
    assert out["example"]["spec"]["index"] == 1  # the shortest program showing it
    assert classes[("kvm_error", "cmpxchg16b")]["programs"] == 1
    assert report.classes[0]["kind"] == "lost_step"  # most programs first
    assert (report.completed, report.agreed, report.steps) == (3, 1, 90)
    assert [x["spec"]["index"] for x in report.lost] == [3] and "died" in report.lost[0]["reason"]
    assert [x["spec"]["index"] for x in report.errors] == [4]


def test_import_kvmtrace_loads_neither_unicorn_nor_dask() -> None:
    import subprocess
    import sys

    code = "import sys, kvmtrace; kvmtrace.DiffReport; print(sorted({'unicorn', 'dask', 'distributed'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kvmtrace.exceptions import UnsupportedError
    from kvmtrace.oracle.cluster import load_distributed
    from kvmtrace.oracle.reference import load_unicorn

    monkeypatch.setitem(sys.modules, "unicorn", None)  # an absent package
    with pytest.raises(UnsupportedError, match=r"pip install 'kvmtrace\[reference\]'"):
        load_unicorn()
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UnsupportedError, match=r"pip install 'kvmtrace\[cluster\]'"):
        load_distributed()
