"""Fuzzed configuration (issue 6): property-based tests with hypothesis.

Every input to HwBreakpoint, GuestDebug, Machine and Machine.trace() either works
or raises a kvmtrace.KvmTraceError subclass whose message names the bad field;
never another exception, a crash, a hang or a leak. The oracles below say which
inputs are valid from the documented API and the x86 DR7 encoding; whatever is
valid is then checked for what it must do (encoding, round trip, a trace that
ends, code bytes restored after software breakpoints).

Example counts are bounded so the file runs in well under a minute
(KVMTRACE_FUZZ_SCALE multiplies them for a deeper search). Hypothesis
keeps no example database here (database=None): a failure prints its
reproduction.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import struct
import subprocess
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

# Hypothesis imports libcst (through mypy_extensions, which warns) the first time it
# reports a failing example; under filterwarnings=error that warning would turn a
# test failure into a pytest INTERNALERROR. Import it here, quietly, once.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

import kvmtrace
from kvmtrace import (
    GuestDebug,
    HwBreakpoint,
    InvalidConfigError,
    KvmTraceError,
    Machine,
    StopReason,
    UnsupportedError,
)

U64 = 1 << 64
KINDS = {"exec": "exec", "write": "write", "rw": "rw", "io": "io"}  # the documented kinds
LEN_BITS = {1: 0b00, 2: 0b01, 8: 0b10, 4: 0b11}
RW_BITS = {"exec": 0b00, "write": 0b01, "io": 0b10, "rw": 0b11}
DR7_RESERVED = 0xFFFF_FFFF_0000_D800  # bits 11, 12, 14, 15, 32-63
GD = 1 << 13
GP_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
           "r14", "r15", "rip", "rflags")
FLAG = {"ENABLE": 0x1, "SINGLESTEP": 0x2, "USE_SW_BP": 0x10000, "USE_HW_BP": 0x20000, "INJECT_DB": 0x40000,
        "INJECT_BP": 0x80000, "BLOCKIRQ": 0x100000}  # <linux/kvm.h>, x86

# KVMTRACE_FUZZ_SCALE=10 runs ten times the examples (a deeper, slower search).
SCALE = float(os.environ.get("KVMTRACE_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


FAST = settings(max_examples=examples(300), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KVM = settings(max_examples=examples(120), deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class Invalid(Exception):
    """Oracle verdict: the input is invalid; ``fields`` are acceptable names for the error."""

    def __init__(self, *fields: str) -> None:
        super().__init__(fields)
        self.fields = fields


class Maybe(Invalid):
    """Oracle verdict: undocumented input (e.g. an alias) that may work or be refused;
    a refusal must name one of ``fields``."""


def expect(fn: Any, oracle: Any) -> Any:
    """Run ``fn``; compare with the oracle's verdict. Returns fn's value when valid
    (None when it was rightly refused)."""
    maybe = False
    try:
        verdict = oracle()
        valid_fields: tuple[str, ...] = ()
    except Invalid as inv:
        verdict, valid_fields, maybe = None, inv.fields, isinstance(inv, Maybe)
    try:
        result = fn()
    except KvmTraceError as e:
        assert valid_fields, f"valid input rejected: {type(e).__name__}: {e}"
        assert any(f in str(e) for f in valid_fields), f"message does not name {valid_fields}: {e}"
        return None
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} (not a KvmTraceError) for input with bad {valid_fields or 'nothing'}: {e}")
    assert maybe or not valid_fields, f"invalid {valid_fields} accepted: {result!r}"
    return verdict if verdict is not None else result


def is_u64(v: Any) -> bool:
    return type(v) is int and 0 <= v < U64


# Strategies ---------------------------------------------------------------------------

garbage = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.binary(max_size=4), st.lists(st.integers(0, 3), max_size=2), st.builds(object), st.complex_numbers(),
)
ints = st.one_of(
    st.integers(-3, 20), st.integers(0, 1 << 20), st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, 1, 0xFFFF, 0x10000, (1 << 32) - 1, 1 << 63, U64 - 1, U64, -1]),
)
addr_like = st.one_of(ints, ints, garbage)
kind_like = st.one_of(st.none(), st.sampled_from(list(KINDS)), st.sampled_from(["EXEC", "x", "read", "", "io "]),
                      st.text(max_size=8), garbage)
length_like = st.one_of(st.none(), st.sampled_from([1, 2, 4, 8]), st.integers(-2, 300), garbage)
flag_like = st.one_of(st.none(), st.booleans(), st.booleans(), st.sampled_from([0, 1, 2, -1, 1.0, "yes", "", b"1"]))


def bp_oracle(addr: Any, kind: Any, length: Any) -> tuple[int, str, int]:
    bad: list[str] = []
    if not is_u64(addr):
        bad.append("addr")
    if kind is None:
        k = "exec"
    elif isinstance(kind, str) and kind in KINDS:
        k = KINDS[kind]
    elif isinstance(kind, str):
        k = "?"  # an undocumented alias may be accepted
    else:
        k, _ = "", bad.append("kind")
    if length is None:
        n = 1
    elif type(length) is int and length in LEN_BITS:
        n = length
    else:
        n, _ = 0, bad.append("length")
    if n and k == "exec" and n != 1:
        bad.append("length")
    if n and is_u64(addr) and addr % n:
        bad.append("addr")
    if k == "io" and is_u64(addr) and addr > 0xFFFF:
        bad.append("addr")
    if bad:
        raise Invalid(*bad, *(["kind"] if k == "?" else []))
    if k == "?":
        raise Maybe("kind", "length", "addr")  # an alias may also imply a length/alignment rule
    return addr, k, n


def make_bp(addr: Any, kind: Any, length: Any) -> HwBreakpoint:
    kw = {}
    if kind is not None:
        kw["kind"] = kind
    if length is not None:
        kw["length"] = length
    return HwBreakpoint(addr, **kw)


def dr7_of(bps: list[tuple[int, str, int]]) -> int:
    v = 0x400
    for i, (_, k, n) in enumerate(bps):
        v |= (1 << (2 * i)) | (RW_BITS[k] << (16 + 4 * i)) | (LEN_BITS[n] << (18 + 4 * i))
    return v


@given(addr=addr_like, kind=kind_like, length=length_like)
@FAST
def test_fuzz_hw_breakpoint(addr: Any, kind: Any, length: Any) -> None:
    def oracle() -> tuple[int, str, int]:
        return bp_oracle(addr, kind, length)

    r = expect(lambda: make_bp(addr, kind, length), oracle)
    if r is None:
        return
    bp = make_bp(addr, kind, length)
    if isinstance(r, HwBreakpoint):  # an accepted alias: whatever it means, it is one of the four kinds
        assert bp.kind in KINDS
        r = (bp_oracle(addr, bp.kind, length))
    a, k, n = r
    assert (bp.addr, bp.kind, bp.length) == (a, k, n)
    for slot in range(4):
        assert bp.dr7_bits(slot) == dr7_of([(0, k, n)] * (slot + 1)) & (0xF << (16 + 4 * slot) | 3 << (2 * slot))
    assert bp == HwBreakpoint(a, kind=k, length=n) and hash(bp) == hash(HwBreakpoint(a, kind=k, length=n))
    repr(bp)


@given(slot=st.one_of(st.integers(-(1 << 65), 1 << 65), garbage))
@settings(max_examples=examples(50), deadline=None, database=None)
def test_fuzz_dr7_bits_slot(slot: Any) -> None:
    bp = HwBreakpoint(0x1000, kind="write", length=4)

    def oracle() -> None:
        if isinstance(slot, bool):
            raise Maybe("slot")  # bool is an int in Python; either answer is fine
        if not (type(slot) is int and 0 <= slot <= 3):
            raise Invalid("slot")

    expect(lambda: bp.dr7_bits(slot), oracle)


# GuestDebug ---------------------------------------------------------------------------

bp_entry = st.one_of(
    st.builds(lambda a: HwBreakpoint(a), st.integers(0, 0xFFFFF)),
    st.builds(lambda a, k, n: (a, k, n), addr_like, kind_like, length_like),
    st.builds(lambda a, k: (a, k), addr_like, kind_like),
    st.builds(lambda a: (a,), addr_like),
    st.just(()), st.just((1, "write", 4, 0)),
    ints, garbage,
)
bp_list = st.one_of(st.none(), st.lists(bp_entry, max_size=6), st.tuples(bp_entry), garbage)
sw_list = st.one_of(st.none(), st.lists(st.one_of(st.integers(0, 0x20000), ints, garbage), max_size=4),
                    st.lists(st.just(0x8000), min_size=2, max_size=2), garbage)
dr7_values = st.one_of(st.integers(0, U64 - 1), st.integers(0, 0xFFFF_FFFF).map(lambda v: v & ~DR7_RESERVED),
                       st.integers(0, 0xFFFF))
raw_like = st.one_of(
    st.none(),
    st.tuples(st.integers(0, U64 - 1), st.integers(0, U64 - 1), st.integers(0, U64 - 1), st.integers(0, U64 - 1),
              dr7_values),
    st.lists(st.one_of(ints, dr7_values), min_size=0, max_size=7),
    garbage,
)


def entry_oracle(e: Any) -> tuple[int, str, int]:
    if isinstance(e, HwBreakpoint):
        return e.addr, e.kind, e.length
    if isinstance(e, tuple):
        if not 1 <= len(e) <= 3:
            raise Invalid("hw_breakpoints")
        if None in e[1:]:
            raise Maybe("kind", "length", "addr")  # None for "default" inside a tuple: either is fine
        return bp_oracle(*e, *([None] * (3 - len(e))))
    if isinstance(e, bool):
        raise Invalid("hw_breakpoints", "addr")
    if isinstance(e, int):
        return bp_oracle(e, None, None)
    raise Invalid("hw_breakpoints")


def is_list_like(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def flag_ok(v: Any) -> bool:
    return v is None or isinstance(v, bool) or (type(v) is int and v in (0, 1))


def debug_oracle(kw: dict[str, Any]) -> dict[str, Any]:
    bad: list[str] = []
    for f in ("single_step", "block_irq", "inject_db", "inject_bp", "general_detect"):
        if not flag_ok(kw.get(f)):
            bad.append(f)
    hw = kw.get("hw_breakpoints")
    bps: list[tuple[int, str, int]] = []
    if hw is not None:
        if not is_list_like(hw):
            bad.append("hw_breakpoints")
        else:
            for e in hw:
                try:
                    bps.append(entry_oracle(e))
                except Maybe:
                    assume(False)  # undocumented kind aliases: covered by the HwBreakpoint test
                except Invalid as inv:
                    bad.extend(inv.fields)
            if len(hw) > 4:
                bad.append("hw_breakpoints")
    sw = kw.get("sw_breakpoints")
    if sw is not None:
        if not is_list_like(sw) or not all(is_u64(a) for a in sw) or len(set(sw)) != len(sw):
            bad.append("sw_breakpoints")
    raw = kw.get("raw_debugreg")
    if raw is not None:
        if not is_list_like(raw) or len(raw) != 5 or not all(is_u64(v) for v in raw) or raw[4] & DR7_RESERVED:
            bad.append("raw_debugreg")
        if hw:
            bad += ["raw_debugreg", "hw_breakpoints"]
    if kw.get("inject_db") and kw.get("inject_bp"):
        bad += ["inject_bp", "inject_db"]
    if bad:
        raise Invalid(*bad)
    return {"bps": bps}


debug_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "single_step": flag_like, "block_irq": flag_like, "inject_db": flag_like, "inject_bp": flag_like,
        "general_detect": flag_like, "hw_breakpoints": bp_list, "sw_breakpoints": sw_list,
        "raw_debugreg": raw_like,
    },
)


def expected_encoding(kw: dict[str, Any], bps: list[tuple[int, str, int]]) -> tuple[list[int], int]:
    raw = kw.get("raw_debugreg")
    if raw is not None:
        dr, dr7 = list(raw[:4]), raw[4] | 0x400
    else:
        dr = [a for a, _, _ in bps] + [0] * (4 - len(bps))
        dr7 = dr7_of(bps)
    if kw.get("general_detect"):
        dr7 |= GD
    c = FLAG["ENABLE"]
    if kw.get("single_step"):
        c |= FLAG["SINGLESTEP"]
    if kw.get("sw_breakpoints"):
        c |= FLAG["USE_SW_BP"]
    if bps or raw is not None or kw.get("general_detect"):
        c |= FLAG["USE_HW_BP"]
    if kw.get("block_irq"):
        c |= FLAG["BLOCKIRQ"]
    if kw.get("inject_db"):
        c |= FLAG["INJECT_DB"]
    if kw.get("inject_bp"):
        c |= FLAG["INJECT_BP"]
    return dr + [0, 0, 0, dr7], c


@given(kw=debug_kwargs)
@FAST
def test_fuzz_guest_debug(kw: dict[str, Any]) -> None:
    note(repr(kw))
    r = expect(lambda: GuestDebug(**kw), lambda: debug_oracle(kw))
    if r is None:
        return
    g = GuestDebug(**kw)
    debugreg, control = expected_encoding(kw, r["bps"])
    assert list(g.debugreg) == debugreg, (list(map(hex, g.debugreg)), list(map(hex, debugreg)))
    assert g.dr7 == debugreg[7]
    assert g.control == control, (hex(g.control), hex(control))
    d = g.to_dict()
    assert GuestDebug.from_dict(d) == g
    assert GuestDebug.from_dict(d).to_dict() == d
    repr(g)


@given(d=st.one_of(
    st.dictionaries(st.sampled_from(["single_step", "hw_breakpoints", "sw_breakpoints", "raw_debugreg", "inject_db",
                                     "block_irq", "general_detect", "inject_bp"]),
                    st.one_of(flag_like, bp_list, sw_list, raw_like), max_size=4),
    garbage, st.lists(st.integers(), max_size=2),
))
@settings(max_examples=examples(150), deadline=None, database=None)
def test_fuzz_guest_debug_from_dict(d: Any) -> None:
    """from_dict: a KvmTraceError for anything that is not a valid description."""
    try:
        g = GuestDebug.from_dict(d)
    except KvmTraceError:
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"GuestDebug.from_dict({d!r}) raised {type(e).__name__}: {e}")
    assert GuestDebug.from_dict(g.to_dict()) == g


def test_from_dict_names_an_unknown_key() -> None:
    """A misspelt key must not silently give a different configuration."""
    with pytest.raises(InvalidConfigError, match="single_stepp"):
        GuestDebug.from_dict({"single_stepp": True})


# Machine parameters --------------------------------------------------------------------

mem_like = st.one_of(
    st.sampled_from([0x20000, 0x21000, 16 << 20, 0xC000_0000, 0x1F000, 0xC000_1000, 0, 0x20001, 1 << 40]),
    st.integers(0x20, 0x400).map(lambda p: p * 0x1000), st.integers(-5, 1 << 33), garbage,
)
mode_like = st.one_of(st.sampled_from(["real", "protected", "long"]), st.sampled_from(["LONG", "x", ""]),
                      st.text(max_size=6), garbage)
vcpus_like = st.one_of(st.integers(1, 4), st.sampled_from([0, 64, 65, 1000, -1, U64]), garbage)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module")
def leak_guard() -> Iterator[None]:
    """No fd or thread left behind by a whole fuzz test."""
    gc.collect()
    fds, tasks = fd_count(), task_count()
    yield
    gc.collect()
    assert fd_count() <= fds, f"fds grew from {fds} to {fd_count()}"
    assert task_count() <= tasks, f"threads grew from {tasks} to {task_count()}"


TINY = {"real": "mov $3, %cx\n1: dec %cx\njnz 1b\nhlt\n", "protected": "mov $3, %ecx\n1: dec %ecx\njnz 1b\nhlt\n",
        "long": "mov $3, %ecx\n1: dec %ecx\njnz 1b\nhlt\n"}
PROGRAMS = {mode: kvmtrace.assemble(src, mode) for mode, src in TINY.items()}


@pytest.mark.requires_kvm
@given(memory_size=mem_like, mode=mode_like, vcpus=vcpus_like)
@settings(max_examples=examples(60), deadline=None, database=None)
def test_fuzz_machine_parameters(leak_guard: None, memory_size: Any, mode: Any, vcpus: Any) -> None:
    bad = []  # None means "the default" for each parameter
    if memory_size is not None and not (is_u64(memory_size) and 0x20000 <= memory_size <= 0xC000_0000
                                        and memory_size % 0x1000 == 0):
        bad.append("memory_size")
    if mode is not None and not isinstance(mode, str):
        bad.append("mode")
    if vcpus is not None and not (is_u64(vcpus) and 1 <= vcpus <= 64):
        bad.append("vcpus")
    documented = mode in ("real", "protected", "long", None)
    try:
        m = Machine(memory_size=memory_size, mode=mode, vcpus=vcpus)
    except KvmTraceError as e:
        if not documented and isinstance(mode, str):
            bad.append("mode")  # an unknown mode string: refusing it is right
        assert bad, f"valid parameters rejected: {e}"
        assert any(f in str(e) for f in bad), f"message does not name {bad}: {e}"
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} (not a KvmTraceError) from Machine({memory_size!r}, {mode!r}, {vcpus!r}): {e}")
    with m:
        assert not bad, f"invalid {bad} accepted"
        assert m.mode in ("real", "protected", "long")  # an undocumented alias maps to a real mode
        if documented:
            assert m.mode == (mode or "long")
        if vcpus is None:
            vcpus = 1
        assert (m.memory_size, m.vcpu_count) == (memory_size or 16 << 20, vcpus)
        assert m.layout["free"][0] + m.layout["free"][1] == m.memory_size
        m.load_program(PROGRAMS[m.mode])
        t = m.trace(GuestDebug(single_step=True), max_events=20, timeout=5)
        assert t.per_vcpu_stop == ["max_events"] * vcpus, t.per_vcpu_stop
        assert len(t) == 20 * vcpus
        assert set(np.unique(t.vcpu).tolist()) == set(range(vcpus))


# trace() arguments -----------------------------------------------------------------------

GUEST = """
_start:
    mov $12, %ecx
loop:
    mov %ecx, 0x1000
    dec %ecx
    jnz loop
io:
    in $0x80, %al
    out %al, $0x80
mmio:
    mov 0x2000000, %eax
    mov %eax, 0x2000008
done:
    mov $7, %al
    out %al, $0xf4
"""


GUEST_PROGRAM = kvmtrace.assemble(GUEST, "long")
GUEST_CODE = b"".join(s.data for s in GUEST_PROGRAM.segments)


@contextlib.contextmanager
def fresh_guest() -> Iterator[tuple[Machine, kvmtrace.Program, bytes]]:
    """A fresh Machine per example: no state carried from one example to the next."""
    with Machine(mode="long") as m:
        m.load_program(GUEST_PROGRAM)
        assert m.read(0x8000, len(GUEST_CODE)) == GUEST_CODE
        yield m, GUEST_PROGRAM, GUEST_CODE


@pytest.fixture
def traced() -> Iterator[tuple[Machine, kvmtrace.Program, bytes]]:
    with fresh_guest() as g:
        yield g


class HandlerBoom(Exception):
    pass


def _h_none(port: int, data: bytes | None, size: int, vcpu: int) -> None:
    return None


def _h_int(port: int, data: bytes | None, size: int, vcpu: int) -> int:
    return 0x1234


def _h_bytes(port: int, data: bytes | None, size: int, vcpu: int) -> bytes:
    return b"\x01\x02\x03\x04\x05\x06\x07\x08\x09"


def _h_short(port: int, data: bytes | None, size: int, vcpu: int) -> bytes:
    return b""


def _h_huge(port: int, data: bytes | None, size: int, vcpu: int) -> int:
    return 1 << 70


def _h_str(port: int, data: bytes | None, size: int, vcpu: int) -> str:
    return "no"


def _h_raise(port: int, data: bytes | None, size: int, vcpu: int) -> None:
    raise HandlerBoom("boom")


handlers = st.one_of(st.none(), st.sampled_from([_h_none, _h_int, _h_bytes, _h_short, _h_huge, _h_str, _h_raise]),
                     st.sampled_from([5, "handler", (1,)]))

SYMBOLS = ("_start", "loop", "io", "mmio", "done")


def valid_debugs() -> st.SearchStrategy[GuestDebug]:
    """Valid GuestDebug configurations aimed at the guest (instruction starts for
    software breakpoints, so patching INT3 never splits an instruction)."""
    starts = st.sampled_from([0x8000, 0x8005, 0x800C, 0x800E, 0x8010, 0x8012, 0x8014])
    hw = st.one_of(
        st.builds(lambda a: HwBreakpoint(a), st.one_of(starts, st.integers(0, 0xFFFFF))),
        st.builds(lambda a, k, n: HwBreakpoint(a - a % n, kind=k, length=n),
                  st.one_of(st.just(0x1000), st.integers(0, 0x20000), st.just(0x80)),
                  st.sampled_from(["write", "rw"]), st.sampled_from([1, 2, 4, 8])),
        st.builds(lambda a, n: HwBreakpoint(a - a % n, kind="io", length=n),
                  st.sampled_from([0x80, 0xE9, 0xF4, 0xFFFF]), st.sampled_from([1, 2, 4, 8])),
    )
    raw = st.tuples(st.integers(0, U64 - 1), st.one_of(starts, st.integers(0, U64 - 1)), st.just(0x1000),
                    st.just(0x80), dr7_values.map(lambda v: v & ~DR7_RESERVED))
    return st.builds(
        lambda ss, hwl, sw, raw_, inj, gd, blk: GuestDebug(
            single_step=ss, hw_breakpoints=None if raw_ else hwl, sw_breakpoints=sw, raw_debugreg=raw_,
            inject_db=inj == "db", inject_bp=inj == "bp", general_detect=gd, block_irq=blk),
        st.booleans(), st.lists(hw, max_size=4), st.lists(starts, max_size=2, unique=True),
        st.one_of(st.none(), st.none(), raw), st.sampled_from([None, None, None, "db", "bp"]),
        st.booleans(), st.sampled_from([False, False, False, True]),
    )


max_events_like = st.one_of(st.none(), st.integers(1, 200), st.sampled_from([0, -1, U64 - 1, U64, True]), garbage)
stop_at_like = st.one_of(st.none(), st.sampled_from([0x8005, 0x800E, 0x8016, 0]), st.sampled_from(SYMBOLS),
                         st.sampled_from(["nowhere", ""]), st.integers(-1, 1 << 65), garbage)
# Timeouts long enough for the guest to finish (< 1 ms): outcomes stay deterministic,
# so hypothesis can replay them. Stopping at a timeout is tested in test_reliability.
timeout_like = st.one_of(st.none(), st.floats(0.05, 3.0), st.sampled_from([0, -1, 0.0, math.nan, math.inf, 1e9, 2]),
                         st.text(max_size=3), st.builds(object), st.just(b"1"))
registers_like = st.one_of(
    st.none(), st.lists(st.sampled_from([*GP_REGS, "RIP", "Rax"]), max_size=5),
    st.lists(st.sampled_from(["cr0", "dr6", "xmm0", "", "rip "]), min_size=1, max_size=2),
    st.sampled_from(["rip", 5, 1.5, b"rip", [1], [None]]),
)
sink_rows_like = st.one_of(st.none(), st.integers(0, 1 << 20), st.sampled_from([-1, U64 - 1, U64, 1.5, "10"]))
raise_like = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2, "yes", 1.0]))


def trace_oracle(args: dict[str, Any], prog: kvmtrace.Program, cr4_de: bool, caps: int) -> None:
    bad: list[str] = []
    dbg = args["debug"]
    if not (dbg is None or isinstance(dbg, GuestDebug)):
        bad.append("debug")
    me = args["max_events"]
    if me is not None and not (is_u64(me) and me >= 1):
        bad.append("max_events")
    sa = args["stop_at"]
    if isinstance(sa, str):
        if sa not in prog.symbols:
            bad.append("stop_at")
    elif sa is not None and not is_u64(sa):
        bad.append("stop_at")
    to = args["timeout"]
    if to is not None and not (isinstance(to, (int, float)) and not isinstance(to, bool)
                               and math.isfinite(to) and 0 < to < 1e9):
        bad.append("timeout")
    regs = args["registers"]
    if regs is not None:
        if isinstance(regs, (str, bytes)) or not isinstance(regs, list):
            bad.append("registers")
        elif not all(isinstance(r, str) and r.lower() in GP_REGS for r in regs) or \
                len({r.lower() for r in regs}) != len(regs):
            bad.append("registers")
    sr = args["sink_rows"]
    if sr is not None and not is_u64(sr):
        bad.append("sink_rows")
    rof = args["raise_on_fault"]
    if not flag_ok(rof):
        bad.append("raise_on_fault")
    for f in ("io_handler", "mmio_handler"):
        if args[f] is not None and not callable(args[f]):
            bad.append(f)
    if isinstance(dbg, GuestDebug) and not bad:
        missing = dbg.control & ~caps
        if missing:
            raise Invalid("KVM_GUESTDBG_")
        if any(b.kind == "io" for b in dbg.hw_breakpoints) and not cr4_de:
            bad.append("hw_breakpoints")
    if bad:
        raise Invalid(*bad)


@pytest.mark.requires_kvm
@given(
    debug=st.one_of(st.none(), valid_debugs(), valid_debugs(), st.sampled_from(["single_step", 1, GuestDebug])),
    max_events=max_events_like, stop_at=stop_at_like, timeout=timeout_like, registers=registers_like,
    sink_rows=sink_rows_like, raise_on_fault=raise_like, io_handler=handlers, mmio_handler=handlers,
    cr4_de=st.booleans(),
)
@KVM
def test_fuzz_trace_arguments(leak_guard: None, cr4_de: bool, **args: Any) -> None:
    with fresh_guest() as (m, prog, code):
        check_trace_arguments(m, prog, code, cr4_de, args)


def check_trace_arguments(m: Machine, prog: kvmtrace.Program, code: bytes, cr4_de: bool, args: dict[str, Any]) -> None:
    cr4 = m.regs["cr4"]
    m.regs["cr4"] = (cr4 | 0x8) if cr4_de else (cr4 & ~0x8)
    caps = m.host_caps["guest_debug_flags"]
    note(repr(args))
    try:
        trace_oracle(args, prog, cr4_de, caps)
        bad: tuple[str, ...] = ()
    except Invalid as inv:
        bad = inv.fields
    start = time.monotonic()
    limit = args["timeout"] if isinstance(args["timeout"], (int, float)) and 0 < args["timeout"] < 5 else 5
    outcome: Any
    try:
        outcome = m.trace(**args)
    except HandlerBoom as e:
        assert args["io_handler"] is _h_raise or args["mmio_handler"] is _h_raise
        outcome = e
    except KvmTraceError as e:
        outcome = e
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} (not a KvmTraceError) from trace({args!r}): {e}")
    elapsed = time.monotonic() - start
    assert elapsed < limit + 1.0, f"trace took {elapsed:.2f} s (timeout {args['timeout']!r})"
    # Software breakpoints are always taken out of guest memory again.
    assert m.read(0x8000, len(code)) == code, "guest code not restored after the trace"
    if bad:
        assert isinstance(outcome, KvmTraceError), f"invalid {bad} accepted: {outcome!r}"
        assert any(f in str(outcome) for f in bad), f"message does not name {bad}: {outcome}"
        assert getattr(outcome, "trace", None) is None or len(outcome.trace) == 0
        assert m.regs["rip"] == 0x8000, "the guest ran although the arguments were invalid"
        return
    if isinstance(outcome, BaseException):
        # Valid arguments may still end in a guest fault, a handler's own error, or a
        # handler returning something unusable; each carries the trace so far.
        ok = (kvmtrace.GuestFaultError, HandlerBoom, InvalidConfigError, kvmtrace.KvmIoctlError)
        assert isinstance(outcome, ok), f"{type(outcome).__name__}: {outcome}"
        if isinstance(outcome, InvalidConfigError):
            assert "handler" in str(outcome), str(outcome)
        t = outcome.trace  # type: ignore[attr-defined]
        assert isinstance(t, kvmtrace.Trace) and m.last_trace is t
    else:
        t = outcome
    n = len(t)
    assert all(len(c) == n for c in t.to_numpy().values())
    assert np.array_equal(t.seq, np.arange(n, dtype=np.uint64))
    assert t.stop_reason != StopReason.UNKNOWN
    if isinstance(args["max_events"], int) and args["max_events"] >= 1:
        assert n <= args["max_events"]
    if args["registers"]:
        assert sorted(t.register_names) == sorted(r.lower() for r in args["registers"])


@pytest.mark.requires_kvm
def test_registers_not_a_list_is_invalid_config(traced: tuple[Machine, kvmtrace.Program, bytes]) -> None:
    m, _, _ = traced
    with pytest.raises(InvalidConfigError, match="registers"):
        m.trace(GuestDebug(), registers=5, timeout=1)  # type: ignore[arg-type]


@pytest.mark.requires_kvm
def test_unknown_stop_at_symbol_names_the_field(traced: tuple[Machine, kvmtrace.Program, bytes]) -> None:
    m, _, _ = traced
    with pytest.raises(InvalidConfigError, match=r"stop_at.*nowhere|nowhere.*stop_at"):
        m.trace(GuestDebug(), stop_at="nowhere", timeout=1)


@pytest.mark.requires_kvm
def test_set_guest_debug_with_a_non_debug_object(traced: tuple[Machine, kvmtrace.Program, bytes]) -> None:
    m, _, _ = traced
    with pytest.raises(InvalidConfigError, match="debug"):
        m.vcpu(0).set_guest_debug("single_step")  # type: ignore[arg-type]


@pytest.mark.requires_kvm
@given(debug=valid_debugs())
@settings(max_examples=examples(80), deadline=None, database=None)
def test_fuzz_set_guest_debug(leak_guard: None, debug: GuestDebug) -> None:
    """Programming any valid configuration works, or names the unsupported flag."""
    with fresh_guest() as (m, _, _):
        check_set_guest_debug(m, debug)


def check_set_guest_debug(m: Machine, debug: GuestDebug) -> None:
    caps = m.host_caps["guest_debug_flags"]
    missing = debug.control & ~caps
    try:
        m.vcpu(0).set_guest_debug(debug)
        assert not missing, f"flags {missing:#x} unsupported by the host were accepted"
    except UnsupportedError as e:
        assert missing, str(e)
        assert "KVM_GUESTDBG_" in str(e)
    except InvalidConfigError as e:
        assert "hw_breakpoints" in str(e) and "CR4.DE" in str(e), str(e)
    finally:
        m.vcpu(0).set_guest_debug(None)


@pytest.mark.requires_kvm
@given(
    name=st.sampled_from(["cr0", "cr4", "efer", "rflags", "cs", "ss", "cs_base", "rsp", "rip", "cr3", "cr8", "dr7"]),
    value=st.one_of(st.integers(0, U64 - 1), st.sampled_from([0, U64 - 1, 1 << 63, 0x8000_0011, 0x20])),
    mode=st.sampled_from(["real", "protected", "long"]),
)
@settings(max_examples=examples(60), deadline=None, database=None)
def test_fuzz_vcpu_state_then_trace(leak_guard: None, name: str, value: int, mode: str) -> None:
    """Odd register values: refused with an error naming the register, or the run
    ends (trace or KvmTraceError) within its timeout; never a crash or a hang."""
    with Machine(mode=mode, memory_size=0x20000) as m:
        m.load_program(PROGRAMS[mode])
        try:
            m.set_register(name, value)
        except InvalidConfigError as e:
            assert name in str(e), str(e)
            return
        start = time.monotonic()
        try:
            t = m.trace(GuestDebug(single_step=True), max_events=50, timeout=1)
            assert len(t) <= 50
        except KvmTraceError:
            pass
        assert time.monotonic() - start < 2


# Guest memory access arguments ------------------------------------------------------------


@pytest.mark.requires_kvm
@given(addr=st.one_of(st.integers(0, 0x30000), ints, garbage),
       size=st.one_of(st.integers(0, 0x30000), st.integers(-3, 1 << 32), garbage),
       data=st.one_of(st.binary(max_size=64), st.builds(bytearray, st.binary(max_size=8)), garbage))
@settings(max_examples=examples(200), deadline=None, database=None)
def test_fuzz_memory_access(addr: Any, size: Any, data: Any) -> None:
    """read/write/load with odd addresses and sizes (sizes up to 4 GiB here; the
    huge ones are in test_reliability, in a child process)."""
    with Machine(mode="long", memory_size=0x20000) as m:
        mem = 0x20000

        def read_oracle() -> None:
            bad = [f for f, v in (("addr", addr), ("size", size)) if not is_u64(v)]
            if bad:
                raise Invalid(*bad)
            if addr + size > mem:
                raise Invalid("outside guest memory")

        r = expect(lambda: m.read(addr, size), read_oracle)
        if r is not None:
            assert len(r) == size

        def write_oracle() -> None:
            bad = [] if is_u64(addr) else ["addr"]
            if not isinstance(data, (bytes, bytearray)):
                bad.append("data")
            if bad:
                raise Invalid(*bad)
            if addr + len(data) > mem:
                raise Invalid("outside guest memory")

        expect(lambda: m.write(addr, data), write_oracle)
        expect(lambda: m.load(data, addr), write_oracle)


# ELF files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("fuzz-elf")
    (d / "a.s").write_text(".globl _start\n_start:\n nop\n mov $1, %eax\nf:\n hlt\n")
    subprocess.run(["as", "--64", "-o", d / "a.o", d / "a.s"], check=True, capture_output=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-N", "-static", "-Ttext=0x8000", "-e", "_start", "-o", d / "a",
                    d / "a.o"], check=True, capture_output=True)
    return (d / "a").read_bytes()


mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 12), st.integers(0, 255)),
    st.tuples(st.just("u64"), st.integers(0, 1 << 12), st.sampled_from([0, 1, 0xFFFF, 1 << 31, 1 << 33, U64 - 1])),
    st.tuples(st.just("cut"), st.integers(0, 1 << 12), st.just(0)),
)


@pytest.mark.requires_kvm
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
@settings(max_examples=examples(200), deadline=None, database=None)
def test_fuzz_elf_bytes(elf_bytes: bytes, mutations: list[tuple[str, int, int]]) -> None:
    """Mutated ELF files: a Program or a ProgramError from parse_elf; loading the
    Program works or raises a KvmTraceError."""
    data = bytearray(elf_bytes)
    for op, off, val in mutations:
        off %= len(data) + 1
        if op == "set" and off < len(data):
            data[off] = val
        elif op == "u64" and off + 8 <= len(data):
            struct.pack_into("<Q", data, off, val)
        elif op == "cut":
            del data[off:]
    note(f"mutations={mutations}")
    try:
        prog = kvmtrace.parse_elf(bytes(data))
    except kvmtrace.ProgramError as e:
        assert str(e)
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"parse_elf raised {type(e).__name__}: {e}")
    if any(s.memsz > 1 << 24 for s in prog.segments):
        return  # covered by test_reliability's huge-memsz tests (it allocates today)
    mode = "long" if prog.bits == 64 else "protected"
    with Machine(mode=mode, memory_size=0x20000) as m:
        try:
            m.load_program(prog)
        except KvmTraceError:
            return
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"load_program raised {type(e).__name__}: {e}")
        try:
            m.trace(GuestDebug(single_step=True), max_events=20, timeout=1)
        except KvmTraceError:
            pass


@given(data=st.binary(max_size=256))
@settings(max_examples=examples(200), deadline=None, database=None)
def test_fuzz_random_bytes_as_elf(data: bytes) -> None:
    for blob in (data, b"\x7fELF" + data, b"\x7fELF\x02\x01\x01" + data, b"\x7fELF\x01\x01\x01" + data):
        try:
            kvmtrace.parse_elf(blob)
        except kvmtrace.ProgramError:
            pass
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"parse_elf({blob!r}) raised {type(e).__name__}: {e}")

