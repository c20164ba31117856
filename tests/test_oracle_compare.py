"""The comparison on synthetic KVM runs (no /dev/kvm): every divergence kind, at the right step."""

from __future__ import annotations

import pytest

pytest.importorskip("unicorn")

from oracle_helpers import perfect_run, reference_for  # noqa: E402

from kvmtrace.oracle import report as K  # noqa: E402
from kvmtrace.oracle.compare import compare  # noqa: E402
from kvmtrace.oracle.state import EFLAGS_BIT, RFLAGS, RIP, View, decode  # noqa: E402

# Steps: 0 mov cx; 1 mov ax; then (2 add, 3 out 0x80, 4 loop) x 3 = steps 2-10;
# 11 mov bx; 12 mul bx; 13 mov [0x1100], ax; the OUT to 0xF4 ends the run.
PROGRAM = """
_start: mov $3, %cx
        mov $0x10, %ax
l:      add %ax, %dx
        out %al, $0x80
        loop l
        mov $0x1234, %bx
        mul %bx
        mov %ax, (0x1100)
        out %al, $0xf4
"""
OUT_STEP, MUL_STEP, STORE_STEP = 3, 12, 13


@pytest.fixture(scope="module")
def good():  # type: ignore[no-untyped-def]
    return perfect_run(PROGRAM)


def check(run):  # type: ignore[no-untyped-def]
    return compare(run, reference_for(run))


def pc_of(run, step: int) -> int:  # type: ignore[no-untyped-def]
    """Address of the instruction of ``step`` (the state before it)."""
    return (run.rows[step - 1] if step else run.initial)[RIP]


def test_an_architectural_run_agrees(good) -> None:  # type: ignore[no-untyped-def]
    r = check(good)
    assert r.agree and r.complete, r
    assert r.steps == len(good.rows)  # every row (the debug-exit OUT ends the run: no row)
    assert r.first_divergence is None and r.exit_code == 0x10 * 0x1234 & 0xFF
    assert r.reference_stop == "exit"


def test_a_missing_row_is_a_lost_step_at_its_instruction(good) -> None:  # type: ignore[no-untyped-def]
    rows = good.rows[:OUT_STEP] + good.rows[OUT_STEP + 1:]
    r = check(good.replace_rows(rows))
    d = r.first_divergence
    assert (d.kind, d.step, d.pc, d.mnemonic) == (K.LOST_STEP, OUT_STEP, pc_of(good, OUT_STEP), "out")
    assert d.observed["lost_traps"] == 1 and r.divergence_count == 1
    assert r.steps == len(good.rows)  # alignment recovered: the rest agrees


def test_several_missing_rows_are_one_lost_step(good) -> None:  # type: ignore[no-untyped-def]
    rows = good.rows[:2] + good.rows[5:]
    d = check(good.replace_rows(rows)).first_divergence
    assert (d.kind, d.step, d.observed["lost_traps"]) == (K.LOST_STEP, 2, 3)


def test_a_missing_last_row_before_the_exit_is_a_lost_step(good) -> None:  # type: ignore[no-untyped-def]
    r = check(good.replace_rows(good.rows[:-1]))
    d = r.first_divergence
    assert (d.kind, d.step, d.mnemonic) == (K.LOST_STEP, STORE_STEP, "mov")
    assert r.divergence_count == 1


def test_an_added_row_is_an_extra_step(good) -> None:  # type: ignore[no-untyped-def]
    halfway = good.rows[4][:RIP] + (good.rows[4][RIP] - 1,) + good.rows[4][RIP + 1:]
    rows = good.rows[:4] + [halfway] + good.rows[4:]
    r = check(good.replace_rows(rows))
    d = r.first_divergence
    assert (d.kind, d.step, d.mnemonic) == (K.EXTRA_STEP, 4, "loop")
    assert r.divergence_count == 1


def test_a_changed_register_is_named_and_the_reference_resyncs(good) -> None:  # type: ignore[no-untyped-def]
    row = list(good.rows[11])  # after mov $0x1234, %bx
    row[1] ^= 0x0100  # rbx
    r = check(good.replace_rows(good.rows[:11] + [tuple(row)] + good.rows[12:]))
    d = r.first_divergence
    assert (d.kind, d.step, d.registers) == (K.REGISTER, 11, ("rbx",))
    assert d.expected["rbx"] == 0x1234 and d.observed["rbx"] == 0x1334


def test_a_changed_pc_is_a_pc_divergence(good) -> None:  # type: ignore[no-untyped-def]
    row = list(good.rows[0])
    row[RIP] += 0x40
    d = check(good.replace_rows([tuple(row)] + good.rows[1:])).first_divergence
    assert (d.kind, d.step) == (K.PC, 0) and "rip" in d.registers


def test_undefined_flags_are_masked_and_defined_ones_compared(good) -> None:  # type: ignore[no-untyped-def]
    mul = decode(bytes.fromhex("f7e3"), 0, 16)  # mul bx: SF ZF AF PF undefined (iced-x86)
    sf, cf = 1 << EFLAGS_BIT["SF"], 1 << EFLAGS_BIT["CF"]
    assert mul.undefined_flags & sf and not mul.undefined_flags & cf

    def flipped(mask: int) -> list[tuple[int, ...]]:  # a host whose MUL leaves other flag values
        return good.rows[:MUL_STEP] + [r[:RFLAGS] + (r[RFLAGS] ^ mask,) + r[RFLAGS + 1:] for r in good.rows[MUL_STEP:]]

    assert check(good.replace_rows(flipped(sf))).agree
    r = check(good.replace_rows(flipped(cf)))
    d = r.first_divergence
    assert (d.kind, d.step, d.mnemonic, d.registers) == (K.FLAGS, MUL_STEP, "mul", ("rflags",))


def test_debug_flags_are_not_compared() -> None:
    view = View.of("real")
    a = tuple([0] * 18)
    b = list(a)
    b[RFLAGS] = (1 << EFLAGS_BIT["TF"]) | (1 << EFLAGS_BIT["RF"])
    assert view.differences(a, tuple(b)) == []


def test_an_internal_error_is_a_kvm_error_at_the_instruction(good) -> None:  # type: ignore[no-untyped-def]
    run = good.replace_rows(good.rows[:MUL_STEP], stop="internal_error", stop_detail={"suberror": 1},
                            final=good.rows[MUL_STEP - 1])
    r = check(run)
    d = r.first_divergence
    assert (d.kind, d.step, d.pc, d.mnemonic) == (K.KVM_ERROR, MUL_STEP, pc_of(good, MUL_STEP), "mul")
    assert d.observed["stop"] == "internal_error" and r.divergence_count == 1


def test_a_lost_trap_then_an_internal_error(good) -> None:  # type: ignore[no-untyped-def]
    run = good.replace_rows(good.rows[:MUL_STEP - 1], stop="internal_error", final=good.rows[MUL_STEP - 1])
    kinds = [(d.kind, d.step) for d in check(run).divergences]
    assert kinds == [(K.LOST_STEP, MUL_STEP - 1), (K.KVM_ERROR, MUL_STEP)]


def test_a_shutdown_is_a_kvm_fault(good) -> None:  # type: ignore[no-untyped-def]
    d = check(good.replace_rows(good.rows[:5], stop="shutdown")).first_divergence
    assert (d.kind, d.step) == (K.KVM_FAULT, 5)


def test_the_step_limit_ends_the_comparison_without_divergence(good) -> None:  # type: ignore[no-untyped-def]
    r = check(good.replace_rows(good.rows[:6], stop="max_events"))
    assert r.agree and not r.complete and r.steps == 6


def test_a_different_exit_code_is_an_end_divergence(good) -> None:  # type: ignore[no-untyped-def]
    d = check(good.replace_rows(good.rows, stop_detail={"exit_code": 7})).first_divergence
    assert d.kind == K.END and d.expected["exit_code"] != 7


def test_port_writes_are_compared(good) -> None:  # type: ignore[no-untyped-def]
    writes = list(good.writes)
    space, port, value = writes[1]
    writes[1] = (space, port, value ^ 1)
    d = check(good.replace_rows(good.rows, writes=writes)).first_divergence
    assert d.kind == K.IO and d.mnemonic == "out"
    assert d.step == OUT_STEP + 3  # the second OUT, one loop iteration later


def test_console_output_is_compared(good) -> None:  # type: ignore[no-untyped-def]
    d = check(good.replace_rows(good.rows, console=b"hello")).first_divergence
    assert d.kind == K.IO and d.observed["console"] == "hello" and d.expected["console"] == ""


def test_memory_is_compared_when_every_step_agrees(good) -> None:  # type: ignore[no-untyped-def]
    mem = bytearray(good.final_memory)
    mem[0x1100] ^= 0xFF
    d = check(good.replace_rows(good.rows, final_memory=bytes(mem))).first_divergence
    assert d.kind == K.MEMORY and "0x1100" in d.expected


def test_divergences_are_bounded_and_counted(good) -> None:  # type: ignore[no-untyped-def]
    rows = [r[:RIP] + (r[RIP] + 0x100,) + r[RIP + 1:] for r in good.rows]  # every pc wrong
    r = check(good.replace_rows(rows * 10, stop="max_events"))
    assert r.divergence_count > len(r.divergences) == K.MAX_DIVERGENCES


def test_report_round_trips_through_json(good) -> None:  # type: ignore[no-untyped-def]
    import json

    r = check(good.replace_rows(good.rows[:OUT_STEP] + good.rows[OUT_STEP + 1:]))
    d = json.loads(r.to_json())
    assert d["agree"] is False and d["first_divergence"]["kind"] == K.LOST_STEP
    back = K.DiffReport.from_dict(d)
    assert back.first_divergence == r.first_divergence and back.steps == r.steps
    assert "lost_step at step 3" in str(r)


def test_mov_ss_is_one_architectural_step_with_the_next_instruction() -> None:
    run = perfect_run("_start: mov %ss, %ax\n mov %ax, %ss\n nop\n nop\n out %al, $0xf4\n")
    pcs = [row[RIP] for row in run.rows]
    assert pcs == [0x8002, 0x8005, 0x8006]  # no trap between MOV SS and the NOP after it


def test_rep_string_traps_after_each_iteration() -> None:
    run = perfect_run("_start: mov $3, %cx\n mov $0x1000, %si\n mov $0x1100, %di\n rep movsb\n"
                      " out %al, $0xf4\n")
    tail = [(row[RIP], row[2] & 0xFFFF) for row in run.rows[3:]]
    assert tail == [(0x8009, 2), (0x8009, 1), (0x800B, 0)]  # pc stays at the REP until the last one


def test_cpuid_outputs_come_from_kvm() -> None:
    run = perfect_run("_start: xor %eax, %eax\n cpuid\n out %al, $0xf4\n")
    row = list(run.rows[1])
    row[0] ^= 0x5  # KVM's CPUID leaf 0 says something else: the machine answers
    r = compare(run.replace_rows([run.rows[0], tuple(row)], stop_detail={"exit_code": row[0] & 0xFF}),
                reference_for(run))
    assert r.agree, r


def test_a_resync_does_not_take_kvms_debug_flags() -> None:
    run = perfect_run("_start: mov $1, %ax\n pushfl\n pop %ebx\n out %al, $0xf4\n")  # a 32-bit image: RF is bit 16
    rf = 1 << EFLAGS_BIT["RF"]
    rows = [(r[0] ^ 0x100,) + r[1:] for r in run.rows]  # a KVM whose MOV got AX wrong
    rows[0] = rows[0][:RFLAGS] + (rows[0][RFLAGS] | rf,) + rows[0][RFLAGS + 1:]  # KVM's RF after a trap
    r = compare(run.replace_rows(rows, stop_detail={"exit_code": rows[-1][0] & 0xFF}), reference_for(run))
    assert [(d.kind, d.step, d.registers) for d in r.divergences] == [(K.REGISTER, 0, ("rax",))]
