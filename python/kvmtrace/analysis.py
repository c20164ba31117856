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
``dr6_fixed_bits``
    #DB events: ``dr6 & 0xffff1ff0 == 0xffff0ff0`` (bits 4-11 and 16-31 read
    1, bit 12 reads 0) and ``dr6 >> 32 == 0``.  When the configured DR7 enables
    RTM debugging (bit 11), bit 16 may read 0.
``dr6_cause``
    #DB events: cause bits (B0-B3, BD, BS, BT) within the allowed set of the
    event's class and including the required ones.  ``Bn`` of a disabled or
    unconfigured slot, ``BD`` without general detect, ``BS`` without
    single-step and ``BT`` are never justified.  Data ``Bn`` cannot be tied to
    an access from the columns, so it is accepted for any enabled data slot.
    Without single-step a trap must carry some justified bit; at an enabled
    exec address without a data cause the missing exec ``Bn`` is reported.
``dr6_no_accumulation``
    Consecutive #DBs of a vCPU (INT3 exits in between are skipped: they do not
    touch DR6): a cause bit set in both that is not allowed for the later event,
    while the later event does carry a justified cause (the stale bit rides
    along with a real #DB - the AMD ``debug.arch.dr6`` accumulation, e.g.
    ``BS|B0`` on every step after a breakpoint hit).  With single-step and code
    bytes a carried data ``Bn`` is also stale when the instruction executed in
    between does not access memory of the slot's kind.
``exception_vector``
    Vector is 1 or 3.  Vector 3 needs an INT3 at pc: a configured software
    breakpoint, or (the guest's own INT3) 0xCC in the code bytes - without code
    bytes such #BPs are accepted with a note; without any software breakpoint
    configured KVM does not intercept #BP at all, so every vector 3 is wrong.
    pc-1 is accepted here and left to ``pc_semantics``.  Vector 1 at a software-breakpoint address is a
    mislabelled INT3 exit when no justified #DB cause is present or, while
    single-stepping, when it repeats the previous event's pc without being an
    instruction-breakpoint/GD fault (the step trap landing on the INT3 comes
    first, the INT3 exit second).
``pc_semantics``
    (a) an event whose only cause is an exec-slot ``Bn`` has ``pc == DRn``
    (faults report the instruction; a stale ``Bn`` next to another cause is
    accumulation instead); (b) single-step: an exec/GD fault has the previous
    event's pc (the step trap that landed on the instruction); (c) with code
    bytes: a GD fault's pc is a MOV to/from DRn; (d) a #BP is reported at the
    INT3 byte, not after it; (e) single-step with code bytes: a data ``Bn``
    trap follows an instruction (the previous event's pc) that accesses memory
    of the slot's kind (write: writes; rw: reads or writes; io: IN/OUT/INS/OUTS;
    interrupts, far transfers and segment/descriptor loads are accepted).
``step_completeness``
    Single-step traces with code bytes: each pc is a successor of the previous
    event's pc: fall-through, direct branch/call target (both for Jcc, LOOP,
    JCXZ), the same pc for REP string instructions, one instruction further
    after MOV SS/POP SS, anything after indirect branches, RET/IRET,
    INT/INT3/INTO/SYSCALL, far transfers outside real mode, HLT/MWAIT,
    exceptions and unreadable or undecodable bytes; the same pc when the later
    event is a fault (exec breakpoint, GD, INT3); anything after an event the
    tracer re-injects (``inject_db``/``inject_bp``).  Decoding uses the trace
    mode's bitness (real 16, protected 32, long 64); each distinct pc is
    decoded once.  Asynchronous interrupts delivered between steps show up as
    gaps (trace with IRQs blocked).
``dr7_echo``
    #DB events: ``dr7 == configured | 0x400``; for a GD fault
    ``(configured & ~GD) | 0x400`` is accepted too (the CPU clears GD on #DB),
    and for the step past a fault the temporary DR7 (see above).
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

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

# --------------------------------------------------------------------------
# Architectural constants
# --------------------------------------------------------------------------

DR6_B0 = 1 << 0
DR6_B1 = 1 << 1
DR6_B2 = 1 << 2
DR6_B3 = 1 << 3
DR6_BD = 1 << 13
DR6_BS = 1 << 14
DR6_BT = 1 << 15
DR6_RTM = 1 << 16  # active low: reads 1 unless the #DB hit inside an RTM region
#: Value of DR6 with no cause recorded (bits 4-11, 16-31 read 1, bit 12 reads 0).
DR6_FIXED_ONES = 0xFFFF0FF0
#: Bits of DR6 with a fixed value: 4-12 and 16-31 (RTM included; see ``rtm``).
DR6_FIXED_MASK = 0xFFFF1FF0
DR6_BP_MASK = 0xF
#: Bits that record the cause of a #DB: B0-B3, BD, BS, BT.
DR6_CAUSE_MASK = DR6_BP_MASK | DR6_BD | DR6_BS | DR6_BT

DR7_FIXED_ONES = 0x400  # bit 10 reads as 1
DR7_RTM = 1 << 11
DR7_GD = 1 << 13

VECTOR_DB = 1
VECTOR_BP = 3

_U64 = (1 << 64) - 1
_NONE_PC = np.uint64(_U64)  # sentinel "no candidate successor"

RULES: dict[str, str] = {
    "dr6_fixed_bits": "DR6 reserved bits hold their fixed values (0xffff0ff0 pattern, bit 12 clear) and bits 63:32 are zero",
    "dr6_cause": "DR6 cause bits (B0-B3, BD, BS, BT) are exactly those the event justifies",
    "dr6_no_accumulation": "no DR6 cause bit is carried over from the previous #DB of the same vCPU without being justified again",
    "exception_vector": "exception is 1 (#DB) for debug exceptions and 3 (#BP) for INT3 at software-breakpoint addresses",
    "pc_semantics": "faults (instruction breakpoints, GD, INT3) report the instruction address; traps report the address after the executed instruction",
    "step_completeness": "while single-stepping every event pc is an architectural successor of the previous event pc (no lost steps)",
    "dr7_echo": "reported DR7 equals the configured DR7 (with bit 10 set)",
}

_BITNESS = {
    "real": 16, "16": 16, "real16": 16, "vm86": 16,
    "protected": 32, "prot": 32, "pm": 32, "32": 32, "protected32": 32, "compat": 32,
    "long": 64, "64": 64, "long64": 64,
}

_KIND_ALIASES = {
    "exec": "exec", "execute": "exec", "x": "exec", "instruction": "exec", "insn": "exec",
    "write": "write", "w": "write",
    "rw": "rw", "readwrite": "rw", "read_write": "rw", "access": "rw", "read": "rw",
    "io": "io", "i/o": "io", "port": "io",
}


# --------------------------------------------------------------------------
# Report objects
# --------------------------------------------------------------------------


def _hex(v: int | None) -> str:
    return "-" if v is None else f"{int(v):#x}"


@dataclass
class Violation:
    """One offending event.  ``expected``/``observed`` are display strings (hex)."""

    index: int
    seq: int
    vcpu: int
    pc: int
    field: str
    expected: str
    observed: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "seq": self.seq,
            "vcpu": self.vcpu,
            "pc": _hex(self.pc),
            "field": self.field,
            "expected": self.expected,
            "observed": self.observed,
            "message": self.message,
        }

    def __str__(self) -> str:
        s = (f"#{self.index} seq={self.seq} vcpu={self.vcpu} pc={self.pc:#x}: "
             f"{self.field} expected {self.expected}, observed {self.observed}")
        return f"{s} ({self.message})" if self.message else s


@dataclass
class RuleResult:
    """Outcome of one rule.  ``status`` is ``"pass"``, ``"fail"`` or ``"skipped"``."""

    id: str
    description: str
    checked: int
    violations: int
    status: str
    examples: list[Violation] = field(default_factory=list)
    reason: str | None = None  # why skipped, or a note about partial coverage

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    @property
    def status_text(self) -> str:
        if self.status == "skipped" and self.reason:
            return f"skipped ({self.reason})"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "status": self.status,
            "checked": self.checked,
            "violations": self.violations,
            "reason": self.reason,
            "examples": [v.to_dict() for v in self.examples],
        }

    def __str__(self) -> str:
        head = f"{self.status.upper():4s}  {self.id:20s} "
        if self.status == "skipped":
            return head + self.status_text
        s = head + f"{self.checked} checked, {self.violations} violation{'s' if self.violations != 1 else ''}"
        if self.reason:
            s += f"  [{self.reason}]"
        for v in self.examples:
            s += "\n        " + str(v)
        if self.violations > len(self.examples):
            s += f"\n        ... {self.violations - len(self.examples)} more"
        return s


@dataclass
class Report:
    """Result of :func:`analyze`."""

    rules: list[RuleResult]
    events: int
    mode: str | None
    vcpus: int
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rules)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "fail"]

    def __getitem__(self, rule_id: str) -> RuleResult:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def __contains__(self, rule_id: object) -> bool:
        return any(r.id == rule_id for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "mode": self.mode,
            "vcpus": self.vcpus,
            "elapsed_s": round(self.elapsed_s, 6),
            "rules": [r.to_dict() for r in self.rules],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        nfail = len(self.failed)
        verdict = "OK" if self.ok else f"FAIL ({nfail} of {len(self.rules)} rules failed)"
        return (f"kvmtrace analysis: {verdict} - {self.events} events, mode {self.mode or '?'}, "
                f"{self.vcpus} vCPU{'s' if self.vcpus != 1 else ''}")

    def __str__(self) -> str:
        return "\n".join([self.summary()] + ["  " + str(r).replace("\n", "\n  ") for r in self.rules])

    def to_rich_table(self, *, examples: int = 3):
        """A :class:`rich.table.Table` with one row per rule (plus first violations)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.summary(), show_lines=False)
        table.add_column("rule", style="bold")
        table.add_column("status")
        table.add_column("checked", justify="right")
        table.add_column("violations", justify="right")
        table.add_column("first violations / note", overflow="fold")
        styles = {"pass": "green", "fail": "bold red", "skipped": "yellow"}
        for r in self.rules:
            detail = "\n".join(str(v) for v in r.examples[:examples])
            if r.violations > min(examples, len(r.examples)):
                detail += f"\n... {r.violations - min(examples, len(r.examples))} more"
            if r.reason and r.status != "skipped":
                detail = (detail + "\n" if detail else "") + f"note: {r.reason}"
            table.add_row(
                r.id,
                Text(r.status_text, style=styles.get(r.status, "")),
                str(r.checked),
                str(r.violations),
                detail,
            )
        return table

    def __rich__(self):
        return self.to_rich_table()


# --------------------------------------------------------------------------
# Code access and decoding
# --------------------------------------------------------------------------


class CodeImage:
    """Read-only guest memory built from ``(addr, bytes)`` regions.

    ``read(addr, size)`` returns exactly ``size`` bytes and raises
    :class:`ValueError` when any byte is outside the regions (adjacent regions
    are joined).  A mapping ``{addr: bytes}`` is accepted as well.
    """

    def __init__(self, regions: Iterable[tuple[int, bytes]] | Mapping[int, bytes]):
        items = regions.items() if isinstance(regions, Mapping) else regions
        regs = sorted((int(a), bytes(b)) for a, b in items)
        self._starts = [a for a, _ in regs]
        self._regions = regs

    @property
    def regions(self) -> list[tuple[int, bytes]]:
        return list(self._regions)

    def read(self, addr: int, size: int) -> bytes:
        addr, size = int(addr), int(size)
        out = bytearray()
        cur = addr
        while len(out) < size:
            k = bisect.bisect_right(self._starts, cur) - 1
            if k < 0:
                break
            start, data = self._regions[k]
            off = cur - start
            if off >= len(data):
                break
            chunk = data[off: off + (size - len(out))]
            out += chunk
            cur += len(chunk)
        if len(out) < size:
            raise ValueError(f"guest address {cur:#x} is not covered by the code image")
        return bytes(out)

    def __repr__(self) -> str:
        spans = ", ".join(f"{a:#x}+{len(b):#x}" for a, b in self._regions)
        return f"CodeImage([{spans}])"


def _fetch(memory: Any, addr: int, size: int = 15) -> bytes:
    """Up to ``size`` bytes at ``addr``; shorter near the end of readable memory."""
    if addr < 0 or addr > _U64:
        return b""
    n = size
    while n > 0:
        try:
            data = memory.read(addr, n)
        except Exception:  # noqa: BLE001 - any reader error means "not readable"
            n -= 1
            continue
        return bytes(data)[:size]
    return b""


@dataclass(slots=True)
class _Insn:
    decoded: bool
    length: int
    text: str
    any_succ: bool  # control may legitimately go anywhere (indirect, ret, int, ...)
    succ: tuple[int, ...]  # candidate successor linear addresses
    reads: bool
    writes: bool
    io: bool
    any_access: bool  # may perform implicit/system accesses we do not model
    movdr: bool


_UNKNOWN = _Insn(False, 0, "(unreadable)", True, (), False, False, False, True, False)


class _CodeCache:
    """Decodes each distinct pc once, at the trace's bitness."""

    def __init__(self, memory: Any, bitness: int):
        import iced_x86 as ix

        self._ix = ix
        self.memory = memory
        self.bitness = bitness
        self._cache: dict[int, _Insn] = {}
        self._info = ix.InstructionInfoFactory()
        ix_mn, ix_code, ix_op = ix.Mnemonic, ix.Code, ix.OpKind
        self._io = {ix_mn.IN, ix_mn.OUT, ix_mn.INSB, ix_mn.INSW, ix_mn.INSD,
                    ix_mn.OUTSB, ix_mn.OUTSW, ix_mn.OUTSD}
        self._halt = {ix_mn.HLT, ix_mn.MWAIT, ix_mn.MWAITX, ix_mn.UMWAIT, ix_mn.TPAUSE}
        self._system = {ix_mn.LGDT, ix_mn.LIDT, ix_mn.LLDT, ix_mn.LTR}
        self._movdr = {ix_code.MOV_DR_R32, ix_code.MOV_DR_R64, ix_code.MOV_R32_DR, ix_code.MOV_R64_DR}
        self._near = {ix_op.NEAR_BRANCH16: 16, ix_op.NEAR_BRANCH32: 32, ix_op.NEAR_BRANCH64: 64}
        self._far = {ix_op.FAR_BRANCH16, ix_op.FAR_BRANCH32}
        self._reads = {ix.OpAccess.READ, ix.OpAccess.COND_READ, ix.OpAccess.READ_WRITE, ix.OpAccess.READ_COND_WRITE}
        self._writes = {ix.OpAccess.WRITE, ix.OpAccess.COND_WRITE, ix.OpAccess.READ_WRITE, ix.OpAccess.READ_COND_WRITE}
        self.undecodable: set[int] = set()

    def get(self, pc: int) -> _Insn:
        pc = int(pc)
        insn = self._cache.get(pc)
        if insn is None:
            insn = self._decode(pc, follow_shadow=True)
            self._cache[pc] = insn
        return insn

    def _decode_raw(self, pc: int):
        data = _fetch(self.memory, pc)
        if not data:
            return None
        dec = self._ix.Decoder(self.bitness, data, ip=pc)
        ins = dec.decode()
        if ins.is_invalid:
            return None
        return ins

    def _decode(self, pc: int, follow_shadow: bool) -> _Insn:
        ix = self._ix
        ins = self._decode_raw(pc)
        if ins is None:
            self.undecodable.add(pc)
            return _UNKNOWN
        length = ins.len
        ft = (pc + length) & _U64
        flow = ins.flow_control
        mn = ins.mnemonic
        FC = ix.FlowControl
        succ: set[int] = set()
        any_succ = False

        near_width = 0
        far = False
        for k in range(ins.op_count):
            kind = ins.op_kind(k)
            if kind in self._near:
                near_width = self._near[kind]
            elif kind in self._far:
                far = True

        def branch_targets() -> set[int]:
            if near_width:
                mask = (1 << near_width) - 1
                rel = (ins.near_branch_target - ins.next_ip) & mask
                if rel >> (near_width - 1):
                    rel -= 1 << near_width
                lin = (pc + length + rel) & _U64
                out = {lin}
                if near_width < 64:
                    # The IP wraps inside the segment; assume a segment base
                    # aligned to the operand size (true for flat and most real-mode code).
                    out.add((pc & ~mask & _U64) | (lin & mask))
                return out
            if far and self.bitness == 16:
                off = ins.far_branch16 if ins.op0_kind == ix.OpKind.FAR_BRANCH16 else ins.far_branch32
                return {((ins.far_branch_selector << 4) + off) & _U64}
            return set()

        if flow == FC.NEXT:
            succ.add(ft)
            if ins.is_string_instruction and (ins.has_rep_prefix or ins.has_repne_prefix):
                succ.add(pc)  # another iteration traps with pc still at the instruction
            if mn in self._halt:
                any_succ = True  # wake-up may go through an interrupt handler
            if follow_shadow and ((mn == ix.Mnemonic.MOV and ins.op0_kind == ix.OpKind.REGISTER
                                   and ins.op0_register == ix.Register.SS)
                                  or (mn == ix.Mnemonic.POP and ins.op_count
                                      and ins.op0_kind == ix.OpKind.REGISTER
                                      and ins.op0_register == ix.Register.SS)):
                # MOV SS / POP SS inhibit debug exceptions until the next
                # instruction completes: the step may land one instruction later.
                nxt = self._decode(ft, follow_shadow=False)
                if nxt.decoded:
                    succ.update(nxt.succ)
                    any_succ |= nxt.any_succ
                else:
                    any_succ = True
        elif flow == FC.CONDITIONAL_BRANCH:
            succ.add(ft)
            t = branch_targets()
            succ |= t
            if not t:
                any_succ = True
        elif flow in (FC.UNCONDITIONAL_BRANCH, FC.CALL):
            t = branch_targets()
            succ |= t
            if not t:  # far branch outside real mode, syscall/sysenter
                any_succ = True
        else:  # indirect branch/call, return, interrupt, exception, xbegin/xabort/xend
            any_succ = True

        reads = writes = False
        info = self._info.info(ins)
        for m in info.used_memory():
            acc = m.access
            if acc in self._reads:
                reads = True
            if acc in self._writes:
                writes = True
        any_access = (flow in (FC.INTERRUPT, FC.EXCEPTION) or far or mn in self._system
                      or (ins.op_count and ins.op0_kind == ix.OpKind.REGISTER
                          and ix.Register.ES <= ins.op0_register <= ix.Register.GS))
        return _Insn(
            decoded=True,
            length=length,
            text=str(ins),
            any_succ=any_succ,
            succ=tuple(sorted(succ)),
            reads=reads,
            writes=writes,
            io=mn in self._io,
            any_access=bool(any_access),
            movdr=ins.code in self._movdr,
        )


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    index: int
    addr: int
    kind: str
    length: int
    enabled: bool


def _kind(k: Any) -> str:
    if k is None:
        return "exec"
    for cand in (k, getattr(k, "value", None), getattr(k, "name", None)):
        if isinstance(cand, str):
            key = cand.strip().lower().replace("-", "_")
            if key in _KIND_ALIASES:
                return _KIND_ALIASES[key]
    raise ValueError(f"unknown hardware breakpoint kind {k!r}")


_RW_BITS = {"exec": 0b00, "write": 0b01, "io": 0b10, "rw": 0b11}
_LEN_BITS = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}
_RW_KIND = {v: k for k, v in _RW_BITS.items()}
# DR7 L/G bits of the lowest slot set in a 4-bit slot mask (0 for none)
_SLOT_ENABLE_LUT = np.array([0] + [3 << (2 * ((m & -m).bit_length() - 1)) for m in range(1, 16)], dtype=np.uint64)
_LEN_BYTES = {v: k for k, v in _LEN_BITS.items()}


def expected_dr7(debug: Any) -> int:
    """DR7 for ``debug``: its ``dr7`` attribute if present, else one derived
    from the breakpoints (Ln bits, R/W, LEN, GD) with bit 10 set."""
    dr7 = getattr(debug, "dr7", None)
    if callable(dr7):
        dr7 = dr7()
    if dr7 is not None:
        return int(dr7) | DR7_FIXED_ONES
    val = DR7_FIXED_ONES
    for i, bp in enumerate(list(getattr(debug, "hw_breakpoints", None) or [])[:4]):
        if bp is None:
            continue
        kind = _kind(getattr(bp, "kind", "exec"))
        length = int(getattr(bp, "length", 1) or 1)
        val |= 1 << (2 * i)
        val |= _RW_BITS[kind] << (16 + 4 * i)
        val |= _LEN_BITS.get(length, 0) << (18 + 4 * i)
    if getattr(debug, "general_detect", False):
        val |= DR7_GD
    return val


class _Config:
    def __init__(self, debug: Any):
        self.single_step = bool(getattr(debug, "single_step", False))
        self.general_detect = bool(getattr(debug, "general_detect", False))
        self.inject_db = bool(getattr(debug, "inject_db", False))
        self.inject_bp = bool(getattr(debug, "inject_bp", False))
        raw_dr7 = getattr(debug, "dr7", None)
        if callable(raw_dr7):
            raw_dr7 = raw_dr7()
        self.dr7_given = raw_dr7 is not None
        self.dr7 = expected_dr7(debug)
        hw = list(getattr(debug, "hw_breakpoints", None) or [])
        if len(hw) > 4:
            raise ValueError(f"at most 4 hardware breakpoints (DR0-DR3), got {len(hw)}")
        self.slots: list[_Slot | None] = [None] * 4
        for i, bp in enumerate(hw):
            if bp is None:
                continue
            enabled = True
            if self.dr7_given:
                enabled = bool((self.dr7 >> (2 * i)) & 3)
            self.slots[i] = _Slot(i, int(getattr(bp, "addr")) & _U64, _kind(getattr(bp, "kind", "exec")),
                                  int(getattr(bp, "length", 1) or 1), enabled)
        if not any(self.slots) and self.dr7_given:
            # Raw debug registers (GuestDebug(raw_debugreg=...)): slots from DR0-3 + DR7.
            raw = getattr(debug, "raw_debugreg", None)
            dr = list(raw)[:4] if raw is not None else list(getattr(debug, "debugreg", None) or [])[:4]
            for i, addr in enumerate(dr):
                if (self.dr7 >> (2 * i)) & 3:
                    rw = (self.dr7 >> (16 + 4 * i)) & 3
                    ln = (self.dr7 >> (18 + 4 * i)) & 3
                    self.slots[i] = _Slot(i, int(addr) & _U64, _RW_KIND[rw], _LEN_BYTES[ln], True)
        self.exec_slots = [s for s in self.slots if s is not None and s.enabled and s.kind == "exec"]
        self.data_slots = [s for s in self.slots if s is not None and s.enabled and s.kind != "exec"]
        self.exec_mask = sum(1 << s.index for s in self.exec_slots)
        self.data_mask = sum(1 << s.index for s in self.data_slots)
        sw = sorted({int(a) & _U64 for a in (getattr(debug, "sw_breakpoints", None) or [])})
        self.sw = np.array(sw, dtype=np.uint64)
        # DR6 fixed bits: with DR7.RTM enabled a #DB inside a transaction clears bit 16.
        self.fixed_mask = DR6_FIXED_MASK & ~(DR6_RTM if self.dr7 & DR7_RTM else 0)

    def slot_desc(self, n: int) -> str:
        s = self.slots[n]
        if s is None:
            return f"DR{n} is not configured"
        if not s.enabled:
            return f"DR{n} ({s.kind} @ {s.addr:#x}) is disabled in DR7"
        return f"DR{n} is a {s.kind} breakpoint @ {s.addr:#x}"


def _bits_name(bits: int) -> str:
    names = [f"B{i}" for i in range(4) if bits >> i & 1]
    names += [n for b, n in ((DR6_BD, "BD"), (DR6_BS, "BS"), (DR6_BT, "BT")) if bits & b]
    return "|".join(names) if names else "none"


# --------------------------------------------------------------------------
# Chunked evaluation engine
# --------------------------------------------------------------------------


#: Events per chunk: small enough for the temporaries to stay in cache.
_CHUNK = 1 << 16

_NEEDS_CONFIG = {"dr6_cause", "dr6_no_accumulation", "pc_semantics", "step_completeness", "dr7_echo"}


def _sw_hit(sw: np.ndarray, pcs: np.ndarray) -> np.ndarray:
    if sw.size == 0:
        return np.zeros(pcs.shape[0], dtype=bool)
    if sw.size <= 8:
        out = pcs == sw[0]
        for a in sw[1:]:
            out |= pcs == a
        return out
    return np.isin(pcs, sw)


def _cut(x: Any, off: int) -> Any:
    return x[off:] if isinstance(x, np.ndarray) else x


def _shift(x: Any, off: int) -> Any:
    """Values at the previous position, aligned with ``_cut(x, off)``."""
    if not isinstance(x, np.ndarray):
        return x
    if off:
        return x[:-1]
    return np.concatenate((x[:1], x[:-1]))  # position 0 has no predecessor (masked)


def _count(mask: Any, m: int) -> int:
    if isinstance(mask, np.ndarray):
        return int(np.count_nonzero(mask))
    return m if mask else 0


class _Derived:
    """Per-event DR6 classification (see module docstring) for a range."""

    __slots__ = ("cause", "match", "exec_fault", "gd_fault", "fault", "allowed", "required")


class _Acc:
    """Violations of one rule, accumulated chunk by chunk.  Keeps the count,
    the number of checked events and the ``k`` earliest offenders."""

    def __init__(self, rule_id: str, k: int, orig: np.ndarray | None):
        self.id = rule_id
        self.k = k
        self.orig = orig
        self.count = 0
        self.checked = 0
        self.ex: dict[int, tuple[int, int, str]] = {}
        self.reasons: list[str] = []

    def add(self, lo: int, subs: list[tuple[str, np.ndarray, Callable | None]], checked: int) -> None:
        """``subs``: (sub-check id, chunk-local bad mask, prev-index function)."""
        self.checked += checked
        union = None
        for _, mask, _ in subs:
            union = mask if union is None else (union | mask)
        if union is None:
            return
        c = int(np.count_nonzero(union))
        if not c:
            return
        self.count += c
        for sub, mask, prev_fn in subs:
            loc = np.flatnonzero(mask)
            if loc.size:
                self._keep(lo, loc, sub, prev_fn)

    def _keep(self, lo: int, loc: np.ndarray, sub: str, prev_fn: Callable | None) -> None:
        k = self.k
        if k <= 0:
            return
        g = loc + lo
        if self.orig is None:
            o, sel = g, slice(0, k)
        else:
            o = self.orig[g]
            sel = np.argsort(o, kind="stable")[:k]
        g, o, loc = g[sel], o[sel], loc[sel]
        if len(self.ex) >= k and int(o.min()) > max(self.ex):
            return
        p = prev_fn(loc) if prev_fn is not None else np.full(loc.shape[0], -1)
        for oi, gi, pi in zip(o.tolist(), g.tolist(), np.asarray(p).tolist()):
            self.ex.setdefault(oi, (gi, pi, sub))
        if len(self.ex) > 4 * k:
            for key in sorted(self.ex)[k:]:
                del self.ex[key]

    def result(self, describe: Callable[[str, int, int], Violation]) -> RuleResult:
        keys = sorted(self.ex)[: self.k]
        examples = [describe(self.ex[o][2], self.ex[o][0], self.ex[o][1]) for o in keys]
        reason = "; ".join(dict.fromkeys(self.reasons)) or None
        return RuleResult(self.id, RULES[self.id], self.checked, self.count,
                          "fail" if self.count else "pass", examples, reason)


class _Engine:
    """Evaluates the rules chunk by chunk in trace order.

    The previous event of the same vCPU is the previous row for single-vCPU
    traces; with several vCPUs it is found per chunk (stable sort of the
    chunk's vCPU ids plus the last index seen per vCPU).  Columns are permuted
    only when ``seq`` is not monotonic.  Reported indices are always those of
    the input trace."""

    def __init__(self, pc, dr6, dr7, exc, vcpu, seq, cfg: _Config | None, mode: str | None,
                 memory: Any, k: int, chunk: int = _CHUNK):
        n = int(pc.shape[0])
        self.n = n
        self.k = k
        self.chunk = max(int(chunk), 16)
        self.single_vcpu = n == 0 or int(vcpu.min()) == int(vcpu.max())
        if self.single_vcpu:
            self.vcpus = 1 if n else 0
        else:
            self.vcpus = int(np.count_nonzero(np.bincount(vcpu)))
        order = None
        if n > 1 and np.any(seq[1:] < seq[:-1]):
            order = np.argsort(seq, kind="stable")
        if order is not None:
            pc, dr6, dr7, exc, vcpu, seq = (a[order] for a in (pc, dr6, dr7, exc, vcpu, seq))
        self.orig = order
        self.pc, self.dr6, self.dr7, self.exc, self.vcpu, self.seq = pc, dr6, dr7, exc, vcpu, seq
        self.all_db = n == 0 or (int(exc.min()) == VECTOR_DB and int(exc.max()) == VECTOR_DB)
        self.cfg = cfg
        self.mode = mode
        self.bitness = _BITNESS.get(str(mode).lower()) if mode is not None else None
        self.memory = memory
        self.code = _CodeCache(memory, self.bitness) if (memory is not None and self.bitness) else None
        self.stepping_over = False
        self._need_prev = False
        self._last_db = -1  # carry for the previous-#DB chain (single vCPU)
        # last index seen per vCPU id, for the chains (several vCPUs)
        self._carry_any = None if self.single_vcpu else np.full(1 << 16, -1, dtype=np.int64)
        self._carry_db = None if self.single_vcpu else np.full(1 << 16, -1, dtype=np.int64)
        self._step = None

    # ---- helpers -------------------------------------------------------
    def orig_index(self, i: int) -> int:
        return int(i) if self.orig is None else int(self.orig[i])

    def violation(self, i: int, field: str, expected: str, observed: str, message: str = "") -> Violation:
        i = int(i)
        return Violation(self.orig_index(i), int(self.seq[i]), int(self.vcpu[i]), int(self.pc[i]),
                         field, expected, observed, message)

    def ev(self, i: int) -> str:
        """Short reference to event ``i`` (sorted index) for messages."""
        return f"#{self.orig_index(i)} (pc={int(self.pc[i]):#x}, dr6={int(self.dr6[i]):#x})"

    def derive(self, a: int, b: int) -> _Derived:
        return self.derive_cols(self.pc[a:b], self.dr6[a:b])

    def derive_cols(self, pc: np.ndarray, dr6: np.ndarray, faults_only: bool = False) -> _Derived:
        """Classify events given their pc and DR6 (``faults_only``: stop after
        cause/match/exec_fault/gd_fault/fault)."""
        cfg = self.cfg
        d = _Derived()
        # every cause bit (B0-B3, BD, BS, BT) lives in the low 16 bits
        cause = dr6.astype(np.uint16)
        cause &= np.uint16(DR6_CAUSE_MASK)
        d.cause = cause
        if cfg.exec_slots:
            match = np.zeros(pc.shape[0], dtype=np.uint16)
            for s in cfg.exec_slots:
                np.bitwise_or(match, np.uint16(1 << s.index), out=match, where=pc == np.uint64(s.addr))
            d.match = match
            d.exec_fault = (cause & match) != 0
        else:
            d.match = np.uint16(0)
            d.exec_fault = np.False_
        if cfg.general_detect:
            d.gd_fault = ((cause & np.uint16(DR6_BD)) != 0) & ~d.exec_fault
            d.fault = d.exec_fault | d.gd_fault
        else:
            d.gd_fault = np.False_
            d.fault = d.exec_fault
        if faults_only:
            return d
        trap_allowed = np.uint16((DR6_BS if cfg.single_step else 0) | cfg.data_mask)
        if cfg.exec_slots:
            allowed = np.where(d.exec_fault, d.match, trap_allowed)
            if cfg.general_detect:
                allowed = np.where(d.gd_fault, np.uint16(DR6_BD), allowed)
        elif cfg.general_detect:
            allowed = np.where(d.gd_fault, np.uint16(DR6_BD), trap_allowed)
        else:
            allowed = trap_allowed
        d.allowed = allowed
        if cfg.single_step:
            if cfg.exec_slots or cfg.general_detect:
                required = np.where(d.fault, allowed, np.uint16(DR6_BS))
            else:
                required = np.uint16(DR6_BS)
        elif cfg.exec_slots:
            # exec fault: the matching Bn; a trap at an exec address without any
            # data cause: the (missing) exec Bn.
            no_data = (cause & np.uint16(cfg.data_mask)) == 0
            required = np.where(d.exec_fault | no_data, d.match, np.uint16(0))
            if cfg.general_detect:
                required = np.where(d.gd_fault, np.uint16(DR6_BD), required)
        elif cfg.general_detect:
            required = np.where(d.gd_fault, np.uint16(DR6_BD), np.uint16(0))
        else:
            required = np.uint16(0)
        d.required = required
        return d

    def derive_one(self, i: int, j: int = -1) -> dict[str, int]:
        """Classification of event ``i``; ``j`` is its predecessor (for step-overs)."""
        d = self.derive(i, i + 1)
        out = {name: int(np.asarray(getattr(d, name)).reshape(-1)[0]) for name in _Derived.__slots__}
        out["stepover"] = 0
        if j >= 0 and self.stepping_over:
            dj = self.derive(j, j + 1)
            exc_j = int(self.exc[j])
            if (exc_j == VECTOR_DB and bool(np.asarray(dj.fault).reshape(-1)[0])) or exc_j == VECTOR_BP:
                out["stepover"] = 1
                out["allowed"] |= DR6_BS
        return out

    def props(self, pcs: np.ndarray, fn: Callable[[_Insn], Any], dtype=bool) -> np.ndarray:
        """``fn(decoded instruction)`` for each pc, decoding distinct pcs once."""
        uniq, inv = np.unique(pcs, return_inverse=True)
        vals = np.array([fn(self.code.get(u)) for u in uniq.tolist()], dtype=dtype)
        return vals[inv.reshape(-1)]

    def data_ok_bits(self, pcs_exec: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Subset of data-slot ``bits`` plausible after executing the instruction at ``pcs_exec``."""
        cfg = self.cfg

        def plausible(ins: _Insn) -> int:
            out = 0
            for s in cfg.data_slots:
                if not ins.decoded or ins.any_access:
                    ok = True
                elif s.kind == "write":
                    ok = ins.writes
                elif s.kind == "rw":
                    ok = ins.reads or ins.writes
                else:
                    ok = ins.io
                out |= (1 << s.index) if ok else 0
            return out

        return self.props(pcs_exec, plausible, dtype=np.uint16) & bits

    def has_int3(self, pcs: np.ndarray) -> np.ndarray:
        if self.memory is None or pcs.size == 0:
            return np.zeros(pcs.shape[0], dtype=bool)
        uniq, inv = np.unique(pcs, return_inverse=True)
        hit = np.array([_fetch(self.memory, int(u), 1) == b"\xcc" for u in uniq.tolist()], dtype=bool)
        return hit[inv.reshape(-1)]

    def step_tables(self):
        """Successor tables over every distinct pc: (index_of, any_ok, candidates)."""
        if self._step is not None:
            return self._step
        pc = self.pc
        lo, hi = int(pc.min()), int(pc.max())
        span = hi - lo + 1
        if span <= (1 << 24):
            base = np.uint64(lo)
            present = np.zeros(span, dtype=bool)
            for a in range(0, self.n, 1 << 20):
                present[(pc[a:a + (1 << 20)] - base).astype(np.intp)] = True
            offs = np.flatnonzero(present)
            uniq = offs.astype(np.uint64) + base
            table = np.zeros(span, dtype=np.int32)
            table[offs] = np.arange(offs.size, dtype=np.int32)

            def index_of(x: np.ndarray) -> np.ndarray:
                return table[(x - base).astype(np.intp)]
        else:
            uniq = np.unique(pc)

            def index_of(x: np.ndarray) -> np.ndarray:
                return np.searchsorted(uniq, x)
        insns = [self.code.get(u) for u in uniq.tolist()]
        any_ok = np.array([x.any_succ for x in insns], dtype=bool)
        ncand = max((len(x.succ) for x in insns), default=0)
        cands = [np.array([x.succ[j] if j < len(x.succ) else _U64 for x in insns], dtype=np.uint64)
                 for j in range(ncand)]
        self._step = (index_of, any_ok, cands)
        return self._step

    def _chain(self, lo: int, hi: int, sel: np.ndarray | None, carry: np.ndarray) -> np.ndarray:
        """For each row of [lo, hi): index of the previous row of the same vCPU
        (among rows where ``sel``; -1 if none).  ``carry`` holds the last such
        index per vCPU id and is updated."""
        m = hi - lo
        prev = np.full(m, -1, dtype=np.int64)
        v = self.vcpu[lo:hi]
        pos = None
        if sel is not None:
            pos = np.flatnonzero(sel)
            if pos.size == 0:
                return prev
            v = v[pos]
        vmin, vmax = int(v.min()), int(v.max())
        if vmin == vmax:
            groups: list[tuple[int, np.ndarray | None]] = [(vmin, None)]
        else:
            present = np.flatnonzero(np.bincount(v - np.uint16(vmin))) + vmin
            groups = [(int(g), np.flatnonzero(v == g)) for g in present] if present.size <= 8 else []
        if groups:
            for g, rows in groups:
                if rows is None:
                    rows = np.arange(v.size, dtype=np.int64)
                loc = rows if pos is None else pos[rows]
                prev[loc[1:]] = loc[:-1] + lo
                prev[loc[0]] = carry[g]
                carry[g] = int(loc[-1]) + lo
            return prev
        # many vCPUs in this chunk: one stable sort by vCPU id
        o = np.argsort(v, kind="stable")
        ps = (o if pos is None else pos[o]).astype(np.int64)
        ps += lo
        vs = v[o]
        newgrp = np.empty(ps.size, dtype=bool)
        newgrp[0] = True
        np.not_equal(vs[1:], vs[:-1], out=newgrp[1:])
        prev_sorted = np.empty(ps.size, dtype=np.int64)
        prev_sorted[1:] = ps[:-1]
        g = np.flatnonzero(newgrp)  # first row of each vCPU in this chunk
        prev_sorted[g] = carry[vs[g]]
        last = np.append(g[1:] - 1, ps.size - 1)
        carry[vs[last]] = ps[last]
        prev[ps - lo] = prev_sorted
        return prev

    # ---- driver ----------------------------------------------------------
    def run(self, selected: list[str]) -> list[RuleResult]:
        cfg = self.cfg
        results: dict[str, RuleResult] = {}
        active: list[str] = []
        for r in selected:
            if self.n == 0:
                results[r] = _skipped(r, "no events")
            elif cfg is None and r in _NEEDS_CONFIG:
                results[r] = _skipped(r, "no debug configuration")
            elif r == "step_completeness" and not cfg.single_step:
                results[r] = _skipped(r, "not a single-step trace")
            elif r == "step_completeness" and self.memory is None:
                results[r] = _skipped(r, "no memory")
            elif r == "step_completeness" and self.code is None:
                results[r] = _skipped(r, f"unknown mode {self.mode!r}")
            else:
                active.append(r)
        accs = {r: _Acc(r, self.k, self.orig) for r in active}
        need = "step_completeness" in accs
        # kvmtrace steps past instruction faults (exec/GD breakpoints, INT3) with
        # single-step on and the trigger disarmed.
        self.stepping_over = cfg is not None and bool(cfg.exec_slots or cfg.general_detect or cfg.sw.size)
        if cfg is not None:
            need |= self.stepping_over and bool({"dr6_cause", "dr7_echo", "dr6_no_accumulation"} & set(accs))
            ss, code = cfg.single_step, self.code is not None
            need |= "dr6_no_accumulation" in accs and (self.all_db or bool(cfg.data_mask and ss and code))
            need |= "exception_vector" in accs and ss and bool(cfg.sw.size)
            need |= "pc_semantics" in accs and ss and bool(cfg.exec_slots or cfg.general_detect
                                                           or (cfg.data_mask and code))
        self._need_prev = need
        for lo in range(0, self.n, self.chunk):
            self._chunk(lo, min(self.n, lo + self.chunk), accs)
        for r, acc in accs.items():
            if r == "dr6_no_accumulation" and cfg.data_mask and not (cfg.single_step and self.code is not None):
                acc.reasons.append("data-breakpoint bits re-verified only for single-step traces with code bytes")
            if r == "step_completeness" and self.code.undecodable:
                acc.reasons.append(f"{len(self.code.undecodable)} pc(s) unreadable/undecodable, "
                                   "any successor accepted")
            results[r] = acc.result(getattr(self, "_describe_" + r))
        return [results[r] for r in selected]

    def _chunk(self, lo: int, hi: int, accs: dict[str, _Acc]) -> None:  # noqa: C901 - one pass, many rules
        cfg = self.cfg
        e0 = lo - 1 if lo else 0
        off = lo - e0
        m = hi - lo
        pc_e = self.pc[e0:hi]
        pc_c, pc_p = pc_e[off:], _shift(pc_e, off)
        dr6_c = self.dr6[lo:hi]
        if self.all_db:
            db_c = bp_c = None
            db_p = np.True_
            bp_p = np.False_
            n_db = m
        else:
            exc_e = self.exc[e0:hi]
            db_e = exc_e == VECTOR_DB
            bp_e = exc_e == VECTOR_BP
            db_c, db_p = db_e[off:], _shift(db_e, off)
            bp_c, bp_p = bp_e[off:], _shift(bp_e, off)
            n_db = int(np.count_nonzero(db_c))
        # previous event of the same vCPU
        if self.single_vcpu:
            if lo:
                has_prev: Any = np.True_
            else:
                has_prev = np.ones(m, dtype=bool)
                has_prev[0] = False

            def prev_any(loc: np.ndarray) -> np.ndarray:
                return loc + (lo - 1)
        elif not self._need_prev:
            has_prev = np.False_
            prev_any = None  # type: ignore[assignment]
        else:
            prev = self._chain(lo, hi, None, self._carry_any)
            has_prev = prev >= 0
            pidx = np.maximum(prev, 0)
            pc_p = self.pc[pidx]
            dp = None
            if cfg is not None and (self.stepping_over or (self.all_db and "dr6_no_accumulation" in accs)):
                dp = self.derive_cols(pc_p, self.dr6[pidx], faults_only=True)
            if not self.all_db:
                exc_p = self.exc[pidx]
                db_p, bp_p = exc_p == VECTOR_DB, exc_p == VECTOR_BP

            def prev_any(loc: np.ndarray, prev=prev) -> np.ndarray:
                return prev[loc]
        n_prev = _count(has_prev, m)

        def only_db(mask: Any) -> Any:
            return mask if db_c is None else (mask & db_c)

        d = self.derive(e0, hi) if cfg is not None else None
        if d is not None:
            cause_c = d.cause[off:]
            allowed_c, required_c = _cut(d.allowed, off), _cut(d.required, off)
            fault_c, gd_c, match_c = _cut(d.fault, off), _cut(d.gd_fault, off), _cut(d.match, off)
            if self.stepping_over and self._need_prev:
                # The tracer steps past a parked fault (exec/GD breakpoint, INT3)
                # with single-step on and the trigger disarmed: the next event of
                # that vCPU may carry BS and the temporary DR7.
                if self.single_vcpu:
                    xf_p = _shift(d.exec_fault, off)
                    gf_p = _shift(d.gd_fault, off)
                    match_p = _shift(d.match, off)
                else:
                    xf_p, gf_p, match_p = dp.exec_fault, dp.gd_fault, dp.match
                xf_p = xf_p & db_p & has_prev
                gf_p = gf_p & db_p & has_prev
                stepover = xf_p | gf_p | (bp_p & has_prev)
                allowed_c = allowed_c | np.where(stepover, np.uint16(DR6_BS), np.uint16(0))

        acc = accs.get("dr6_fixed_bits")
        if acc is not None:
            fm = cfg.fixed_mask if cfg is not None else DR6_FIXED_MASK
            # fixed bits and bits 63:32 (must be 0) in one comparison
            bad = (dr6_c & np.uint64(fm | 0xFFFFFFFF00000000)) != np.uint64(DR6_FIXED_ONES & fm)
            acc.add(lo, [("fixed", only_db(bad), None)], n_db)

        acc = accs.get("dr6_cause")
        if acc is not None:
            bad = ((cause_c & ~allowed_c) != 0) | ((required_c & ~cause_c) != 0)
            if not cfg.single_step:
                bad |= ((cause_c & allowed_c) == 0) & (required_c == 0)
            acc.add(lo, [("cause", only_db(bad), prev_any)], n_db)

        acc = accs.get("dr7_echo")
        if acc is not None:
            exp = cfg.dr7 | DR7_FIXED_ONES
            dr7_c = self.dr7[lo:hi]
            ok = dr7_c == np.uint64(exp)
            if cfg.general_detect and exp & DR7_GD:
                ok |= gd_c & (dr7_c == np.uint64(exp & ~DR7_GD))
            if self.stepping_over and self._need_prev:
                if cfg.exec_slots:
                    # exec slot disarmed for the step: the lowest matching slot's L/G bits cleared
                    v1 = np.uint64(exp) & ~_SLOT_ENABLE_LUT[match_p]
                    ok |= xf_p & ((dr7_c == v1) | (dr7_c == (v1 & np.uint64(~DR7_GD & _U64))))
                if cfg.general_detect:
                    ok |= gf_p & (dr7_c == np.uint64(exp & ~DR7_GD))
            acc.add(lo, [("dr7", only_db(~ok), prev_any)], n_db)

        acc = accs.get("dr6_no_accumulation")
        if acc is not None:
            if self.all_db and self.single_vcpu:
                pcause = d.cause[:-1] if off else np.concatenate((d.cause[:1], d.cause[:-1]))
                valid = has_prev
                prev_fn = prev_any
            elif self.all_db:
                pcause = dp.cause
                valid = has_prev
                prev_fn = prev_any
            elif not self.single_vcpu:
                prevdb = self._chain(lo, hi, db_c, self._carry_db)
                valid = prevdb >= 0
                pcause = self.dr6[np.maximum(prevdb, 0)].astype(np.uint16) & np.uint16(DR6_CAUSE_MASK)

                def prev_fn(loc: np.ndarray, prevdb=prevdb) -> np.ndarray:
                    return prevdb[loc]
            else:
                idx = np.where(db_c, np.arange(lo, hi, dtype=np.int64), np.int64(-1))
                incl = np.maximum.accumulate(idx)
                np.maximum(incl, self._last_db, out=incl)
                prevdb = np.empty(m, dtype=np.int64)
                prevdb[0] = self._last_db
                prevdb[1:] = incl[:-1]
                self._last_db = int(incl[-1])
                valid = prevdb >= 0
                pcause = self.dr6[np.maximum(prevdb, 0)].astype(np.uint16) & np.uint16(DR6_CAUSE_MASK)

                def prev_fn(loc: np.ndarray, prevdb=prevdb) -> np.ndarray:
                    return prevdb[loc]
            both = cause_c & pcause
            carried = both & ~allowed_c
            if cfg.data_mask and cfg.single_step and self.code is not None:
                cd = only_db(((both & np.uint16(cfg.data_mask)) != 0) & valid & has_prev)
                loc = np.flatnonzero(cd)
                if loc.size:
                    bits = both[loc] & np.uint16(cfg.data_mask)
                    okb = self.data_ok_bits(pc_p[loc], bits)
                    carried = carried.copy()
                    carried[loc] |= bits & ~okb
            bad = only_db((carried != 0) & ((cause_c & allowed_c) != 0) & valid)
            acc.add(lo, [("acc", bad, prev_fn)], _count(only_db(valid), m))

        acc = accs.get("exception_vector")
        if acc is not None:
            subs = []
            if db_c is not None:
                subs.append(("invalid", ~(db_c | bp_c), None))
                loc = np.flatnonzero(bp_c)
                if loc.size:
                    p3 = pc_c[loc]
                    sw = cfg.sw if cfg is not None else np.zeros(0, np.uint64)
                    ok = _sw_hit(sw, p3) | _sw_hit(sw, p3 - np.uint64(1))
                    if not ok.all():
                        rest = np.flatnonzero(~ok)
                        if cfg is not None and not cfg.sw.size:
                            pass  # KVM_GUESTDBG_USE_SW_BP is off: KVM never exits on #BP
                        elif self.memory is not None:  # the guest's own INT3?
                            ok[rest] = self.has_int3(p3[rest]) | self.has_int3(p3[rest] - np.uint64(1))
                        else:
                            ok[rest] = True
                            acc.reasons.append("#BP outside the software breakpoints not verified (no code bytes)")
                    mask = np.zeros(m, dtype=bool)
                    mask[loc[~ok]] = True
                    subs.append(("bp", mask, None))
            if cfg is not None and cfg.sw.size:
                at_sw = only_db(_sw_hit(cfg.sw, pc_c))
                if at_sw.any():
                    subs.append(("unexplained", at_sw & ((cause_c & allowed_c) == 0), None))
                    if cfg.single_step:
                        dup = at_sw & has_prev & db_p & (pc_c == pc_p) & ~fault_c
                        subs.append(("dup", dup, prev_any))
            acc.add(lo, subs, m)

        acc = accs.get("pc_semantics")
        if acc is not None:
            subs = []
            checked: Any = np.zeros(m, dtype=bool)
            if cfg.exec_slots:
                others = (cause_c & (np.uint16(DR6_BS | DR6_BD | cfg.data_mask) | match_c)) != 0
                for s in cfg.exec_slots:
                    has = only_db((cause_c & np.uint16(1 << s.index)) != 0)
                    checked |= has
                    subs.append((f"a{s.index}", has & ~others & (pc_c != np.uint64(s.addr)), None))
            if cfg.single_step and (cfg.exec_slots or cfg.general_detect):
                fc = only_db(fault_c & has_prev)
                checked |= fc
                subs.append(("b", fc & (pc_c != pc_p), prev_any))
            if cfg.general_detect:
                g = only_db(gd_c)
                loc = np.flatnonzero(g)
                if loc.size:
                    if self.code is not None:
                        checked |= g
                        ok = self.props(pc_c[loc], lambda ins: (not ins.decoded) or ins.movdr)
                        mask = np.zeros(m, dtype=bool)
                        mask[loc[~ok]] = True
                        subs.append(("c", mask, None))
                    else:
                        acc.reasons.append("GD instruction not verified (no code bytes)")
            if cfg.sw.size and bp_c is not None:
                loc = np.flatnonzero(bp_c)
                if loc.size:
                    checked |= bp_c
                    p3 = pc_c[loc]
                    badl = ~_sw_hit(cfg.sw, p3) & _sw_hit(cfg.sw, p3 - np.uint64(1))
                    mask = np.zeros(m, dtype=bool)
                    mask[loc[badl]] = True
                    subs.append(("d", mask, None))
            if cfg.data_mask:
                if cfg.single_step and self.code is not None:
                    cand = only_db(((cause_c & np.uint16(cfg.data_mask)) != 0) & ~fault_c & has_prev)
                    loc = np.flatnonzero(cand)
                    if loc.size:
                        checked |= cand
                        bits = cause_c[loc] & np.uint16(cfg.data_mask)
                        okb = self.data_ok_bits(pc_p[loc], bits)
                        mask = np.zeros(m, dtype=bool)
                        mask[loc[(bits & ~okb) != 0]] = True
                        subs.append(("e", mask, prev_any))
                else:
                    acc.reasons.append("data-breakpoint pcs verified only for single-step traces with code bytes")
            acc.add(lo, subs, int(np.count_nonzero(checked)))

        acc = accs.get("step_completeness")
        if acc is not None:
            index_of, any_ok, cands = self.step_tables()
            u = index_of(pc_p)
            ok = any_ok[u]
            for col in cands:
                ok |= pc_c == col[u]
            same_fault = fault_c if bp_c is None else (fault_c | bp_c)
            ok |= (pc_c == pc_p) & same_fault
            if cfg.inject_db:
                ok |= db_p
            if cfg.inject_bp:
                ok |= bp_p
            acc.add(lo, [("step", ~ok & has_prev, prev_any)], n_prev)

    # ---- example descriptions ------------------------------------------------
    def _describe_dr6_fixed_bits(self, sub: str, i: int, j: int) -> Violation:
        mask = self.cfg.fixed_mask if self.cfg is not None else DR6_FIXED_MASK
        v = int(self.dr6[i])
        exp = (v & 0xFFFFFFFF & ~mask) | (DR6_FIXED_ONES & mask)
        diff = v ^ exp
        parts = []
        if v >> 32:
            parts.append("bits 63:32 set")
        if diff & 0xFFFFFFFF:
            parts.append(f"fixed bits differ ({diff & 0xFFFFFFFF:#x})")
        return self.violation(i, "dr6", _hex(exp), _hex(v), ", ".join(parts))

    def prev_row(self, i: int) -> int:
        """Previous row of the same vCPU (sorted space), -1 if none."""
        if self.single_vcpu:
            return i - 1
        v = self.vcpu[i]
        hi = i
        while hi > 0:
            lo = max(0, hi - 4096)
            hit = np.flatnonzero(self.vcpu[lo:hi] == v)
            if hit.size:
                return lo + int(hit[-1])
            hi = lo
        return -1

    def _describe_dr6_cause(self, sub: str, i: int, j: int) -> Violation:
        cfg = self.cfg
        d = self.derive_one(i, j)
        c, a, r = d["cause"], d["allowed"], d["required"]
        exp = (c & a) | r
        msgs = []
        for b in range(4):
            if (c & ~a) >> b & 1:
                s = cfg.slots[b]
                if s is not None and s.enabled and s.kind == "exec":
                    msgs.append(f"B{b} set but pc != DR{b} ({s.addr:#x})")
                elif s is not None and s.enabled and d["fault"]:
                    msgs.append(f"B{b} (data breakpoint) set on a fault event")
                else:
                    msgs.append(f"B{b} set but {cfg.slot_desc(b)}")
        if c & ~a & DR6_BS:
            msgs.append("BS set on a fault event" if cfg.single_step else "BS set but single-step is off")
        if c & ~a & DR6_BD:
            msgs.append("BD set but general detect is off" if not cfg.general_detect else "BD with other causes")
        if c & ~a & DR6_BT:
            msgs.append("BT (task switch) set")
        if r & ~c:
            msgs.append(f"missing {_bits_name(r & ~c)}")
        exp_s = _hex(DR6_FIXED_ONES | exp)
        if (c & a) == 0 and r == 0:
            if cfg.data_slots:
                exp_s += f" + one of {_bits_name(cfg.data_mask)}"
                msgs.append("no cause bit explains this #DB (expected an enabled data breakpoint's Bn)")
            else:
                exp_s = "no #DB"
                msgs.append("no configured debug feature explains this #DB")
        return self.violation(i, "dr6", exp_s, _hex(int(self.dr6[i])), "; ".join(msgs))

    def _describe_dr6_no_accumulation(self, sub: str, i: int, j: int) -> Violation:
        cfg = self.cfg
        ci = self.derive_one(i, self.prev_row(i))
        cj = int(self.dr6[j]) & DR6_CAUSE_MASK
        car = ci["cause"] & cj
        car_bad = car & ~ci["allowed"] or car & cfg.data_mask
        exp = int(self.dr6[i]) & ~car_bad
        return self.violation(i, "dr6", _hex(exp), _hex(int(self.dr6[i])),
                              f"{_bits_name(car_bad)} carried over from event {self.ev(j)}")

    def _describe_exception_vector(self, sub: str, i: int, j: int) -> Violation:
        x = str(int(self.exc[i]))
        if sub == "invalid":
            return self.violation(i, "exception", "1 or 3", x, "not a debug (#DB) or breakpoint (#BP) vector")
        if sub == "bp":
            return self.violation(i, "exception", "1", x, "#BP at an address without a software breakpoint/INT3")
        if sub == "unexplained":
            return self.violation(i, "exception", "3", x,
                                  "event at a software breakpoint without a justified #DB cause")
        return self.violation(i, "exception", "3", x,
                              f"second #DB at software breakpoint {int(self.pc[i]):#x} right after "
                              f"event #{self.orig_index(j)}: this is the INT3 exit")

    def _describe_pc_semantics(self, sub: str, i: int, j: int) -> Violation:
        cfg = self.cfg
        pc = int(self.pc[i])
        if sub.startswith("a"):
            s = cfg.slots[int(sub[1:])]
            msg = f"B{s.index} (exec breakpoint) reported at pc != DR{s.index}"
            if self.code is not None:
                ins = self.code.get(s.addr)
                if ins.decoded and pc == s.addr + ins.length:
                    msg += " - pc is after the instruction (trap semantics for a fault)"
            return self.violation(i, "pc", _hex(s.addr), _hex(pc), msg)
        if sub == "b":
            kind = "GD" if self.derive_one(i)["gd_fault"] else "instruction-breakpoint"
            return self.violation(i, "pc", _hex(int(self.pc[j])), _hex(pc),
                                  f"{kind} fault must be reported at the instruction the previous step "
                                  f"(event #{self.orig_index(j)}) landed on")
        if sub == "c":
            return self.violation(i, "pc", "a MOV to/from DRn", self.code.get(pc).text,
                                  "GD fault not at a debug-register access")
        if sub == "d":
            return self.violation(i, "pc", _hex(pc - 1), _hex(pc),
                                  "#BP must report the address of the INT3 byte, not the address after it")
        ins = self.code.get(int(self.pc[j]))
        bits = int(self.dr6[i]) & cfg.data_mask
        kinds = "/".join(sorted({cfg.slots[b].kind for b in range(4) if bits >> b & 1}))
        return self.violation(i, "pc", f"trap after a {kinds} access", f"{int(self.pc[j]):#x}: {ins.text}",
                              f"{_bits_name(bits)} data breakpoint but the instruction executed before "
                              f"the trap (event #{self.orig_index(j)}) does not access memory that way")

    def _describe_step_completeness(self, sub: str, i: int, j: int) -> Violation:
        ins = self.code.get(int(self.pc[j]))
        exp = ", ".join(_hex(t) for t in ins.succ) or "?"
        return self.violation(
            i, "pc", exp, _hex(int(self.pc[i])),
            f"not a successor of event #{self.orig_index(j)} pc={int(self.pc[j]):#x} "
            f"({ins.text}, {ins.length} bytes): lost step?")

    def _describe_dr7_echo(self, sub: str, i: int, j: int) -> Violation:
        cfg = self.cfg
        exp = cfg.dr7 | DR7_FIXED_ONES
        got = int(self.dr7[i])
        msg = f"differs in {got ^ exp:#x}"
        if not cfg.dr7_given:
            msg += " (DR7 derived from the breakpoints)"
        return self.violation(i, "dr7", _hex(exp), _hex(got), msg)


def _skipped(rule_id: str, reason: str) -> RuleResult:
    return RuleResult(rule_id, RULES[rule_id], 0, 0, "skipped", [], reason)


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def _column(obj: Any, name: str) -> np.ndarray | None:
    val = getattr(obj, name, None)
    if callable(val) and not isinstance(val, np.ndarray):
        val = val()
    return None if val is None else np.asarray(val)


def _mode_name(mode: Any) -> str | None:
    if mode is None:
        return None
    if isinstance(mode, (int, np.integer)):
        return {16: "real", 32: "protected", 64: "long"}.get(int(mode), str(mode))
    for cand in (mode, getattr(mode, "value", None), getattr(mode, "name", None)):
        if isinstance(cand, str):
            return cand.lower()
        if isinstance(cand, (int, np.integer)) and int(cand) in (16, 32, 64):
            return {16: "real", 32: "protected", 64: "long"}[int(cand)]
    return str(mode).lower()


def analyze_columns(
    pc: Any,
    dr6: Any,
    dr7: Any,
    exception: Any,
    vcpu: Any = None,
    seq: Any = None,
    *,
    debug: Any = None,
    mode: Any = "long",
    memory: Any = None,
    rules: Iterable[str] | None = None,
    max_examples: int = 10,
    chunk: int = _CHUNK,
) -> Report:
    """:func:`analyze` on bare columns (array-likes of equal length).

    ``chunk`` is the number of events evaluated per vectorised step."""
    t0 = time.perf_counter()
    pc = np.ascontiguousarray(pc, dtype=np.uint64)
    n = int(pc.shape[0])
    dr6 = np.ascontiguousarray(dr6, dtype=np.uint64)
    dr7 = np.ascontiguousarray(dr7, dtype=np.uint64)
    exception = np.ascontiguousarray(exception, dtype=np.uint8)
    vcpu = np.zeros(n, dtype=np.uint16) if vcpu is None else np.ascontiguousarray(vcpu, dtype=np.uint16)
    seq = np.arange(n, dtype=np.uint64) if seq is None else np.ascontiguousarray(seq, dtype=np.uint64)
    for name, col in (("dr6", dr6), ("dr7", dr7), ("exception", exception), ("vcpu", vcpu), ("seq", seq)):
        if col.shape != pc.shape:
            raise ValueError(f"column {name} has shape {col.shape}, pc has {pc.shape}")
    selected = list(RULES) if rules is None else list(rules)
    for r in selected:
        if r not in RULES:
            raise ValueError(f"unknown rule {r!r}; known: {', '.join(RULES)}")
    mode_s = _mode_name(mode)
    cfg = _Config(debug) if debug is not None else None
    eng = _Engine(pc, dr6, dr7, exception, vcpu, seq, cfg, mode_s, memory, max_examples,
                  chunk=chunk)
    results = eng.run(selected)
    return Report(results, n, mode_s, eng.vcpus, time.perf_counter() - t0)


def analyze(trace: Any, debug: Any = None, *, memory: Any = None, mode: Any = None,
            rules: Iterable[str] | None = None, max_examples: int = 10) -> Report:
    """Check a ``KVM_EXIT_DEBUG`` trace against the x86 debug architecture.

    ``trace`` needs numpy-compatible attributes ``pc``, ``dr6``, ``dr7``,
    ``exception`` and optionally ``vcpu``, ``seq``, ``mode``, ``debug`` and
    ``code_regions`` (list of ``(addr, bytes)``).  ``debug`` (default
    ``trace.debug``) is the guest-debug configuration; ``memory`` is anything
    with ``read(addr, size) -> bytes`` and is used to decode instructions.
    ``mode`` ("real" | "protected" | "long") overrides ``trace.mode``.
    """
    if debug is None:
        debug = getattr(trace, "debug", None)
    if mode is None:
        mode = getattr(trace, "mode", None)
    if memory is None:
        regions = getattr(trace, "code_regions", None)
        if callable(regions):
            regions = regions()
        if regions:
            memory = CodeImage(regions)
    cols = {}
    for name in ("pc", "dr6", "dr7", "exception"):
        col = _column(trace, name)
        if col is None:
            raise TypeError(f"trace has no {name!r} column")
        cols[name] = col
    return analyze_columns(
        cols["pc"], cols["dr6"], cols["dr7"], cols["exception"],
        _column(trace, "vcpu"), _column(trace, "seq"),
        debug=debug, mode=mode, memory=memory, rules=rules, max_examples=max_examples,
    )
