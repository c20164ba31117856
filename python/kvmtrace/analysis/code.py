"""Guest code for the rules that decode instructions: :class:`CodeImage` (guest
memory from ``(addr, bytes)`` regions), instruction fetch, and :class:`CodeCache`,
which decodes each distinct pc once with iced-x86 at the trace's bitness into an
:class:`Insn` (length, architectural successors, memory and I/O accesses)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, cast

import iced_x86 as ix

U64 = (1 << 64) - 1
#: The longest x86 instruction.
MAX_INSN_BYTES = 15

_FC = ix.FlowControl
_IO = {ix.Mnemonic.IN, ix.Mnemonic.OUT, ix.Mnemonic.INSB, ix.Mnemonic.INSW, ix.Mnemonic.INSD,
       ix.Mnemonic.OUTSB, ix.Mnemonic.OUTSW, ix.Mnemonic.OUTSD}
_HALT = {ix.Mnemonic.HLT, ix.Mnemonic.MWAIT, ix.Mnemonic.MWAITX, ix.Mnemonic.UMWAIT, ix.Mnemonic.TPAUSE}
_SYSTEM = {ix.Mnemonic.LGDT, ix.Mnemonic.LIDT, ix.Mnemonic.LLDT, ix.Mnemonic.LTR}
_MOV_DR = {ix.Code.MOV_DR_R32, ix.Code.MOV_DR_R64, ix.Code.MOV_R32_DR, ix.Code.MOV_R64_DR}
_NEAR_WIDTH = {ix.OpKind.NEAR_BRANCH16: 16, ix.OpKind.NEAR_BRANCH32: 32, ix.OpKind.NEAR_BRANCH64: 64}
_FAR = {ix.OpKind.FAR_BRANCH16, ix.OpKind.FAR_BRANCH32}
_READS = {ix.OpAccess.READ, ix.OpAccess.COND_READ, ix.OpAccess.READ_WRITE, ix.OpAccess.READ_COND_WRITE}
_WRITES = {ix.OpAccess.WRITE, ix.OpAccess.COND_WRITE, ix.OpAccess.READ_WRITE, ix.OpAccess.READ_COND_WRITE}


class CodeImage:
    """Read-only guest memory built from ``(addr, bytes)`` regions.

    ``read(addr, size)`` returns exactly ``size`` bytes and raises
    :class:`ValueError` when any byte is outside the regions (adjacent regions
    are joined).  A mapping ``{addr: bytes}`` is accepted as well.
    """

    def __init__(self, regions: Iterable[tuple[int, bytes]] | Mapping[int, bytes]):
        items = regions.items() if isinstance(regions, Mapping) else regions
        regs = sorted((int(a), bytes(b)) for a, b in cast("Iterable[tuple[int, bytes]]", items))
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
            piece = data[off: off + (size - len(out))]
            out += piece
            cur += len(piece)
        if len(out) < size:
            raise ValueError(f"guest address {cur:#x} is not covered by the code image")
        return bytes(out)

    def __repr__(self) -> str:
        spans = ", ".join(f"{a:#x}+{len(b):#x}" for a, b in self._regions)
        return f"CodeImage([{spans}])"


def fetch(memory: Any, addr: int, size: int = MAX_INSN_BYTES) -> bytes:
    """Up to ``size`` bytes at ``addr``; shorter near the end of readable memory."""
    if addr < 0 or addr > U64:
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
class Insn:
    """What the rules need to know about one decoded instruction."""

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


UNKNOWN = Insn(False, 0, "(unreadable)", True, (), False, False, False, True, False)


def _loads_ss(ins: Any) -> bool:
    """MOV SS / POP SS: they inhibit debug exceptions until the next instruction completes."""
    return (ins.mnemonic in (ix.Mnemonic.MOV, ix.Mnemonic.POP) and ins.op_count > 0
            and ins.op0_kind == ix.OpKind.REGISTER and ins.op0_register == ix.Register.SS)


def _accesses(ins: Any, info: Any) -> tuple[bool, bool]:
    """(reads memory, writes memory) from iced-x86's used-memory list."""
    reads = writes = False
    for m in info.used_memory():
        reads |= m.access in _READS
        writes |= m.access in _WRITES
    return reads, writes


class CodeCache:
    """Decodes each distinct pc once, at the trace's bitness."""

    def __init__(self, memory: Any, bitness: int):
        self.memory = memory
        self.bitness = bitness
        self._cache: dict[int, Insn] = {}
        self._info = ix.InstructionInfoFactory()
        self.undecodable: set[int] = set()

    def get(self, pc: int) -> Insn:
        pc = int(pc)
        insn = self._cache.get(pc)
        if insn is None:
            insn = self._decode(pc, follow_shadow=True)
            self._cache[pc] = insn
        return insn

    def _decode_raw(self, pc: int) -> Any:
        data = fetch(self.memory, pc)
        if not data:
            return None
        ins = ix.Decoder(self.bitness, data, ip=pc).decode()
        return None if ins.is_invalid else ins

    def _decode(self, pc: int, follow_shadow: bool) -> Insn:
        ins = self._decode_raw(pc)
        if ins is None:
            self.undecodable.add(pc)
            return UNKNOWN
        far = any(ins.op_kind(k) in _FAR for k in range(ins.op_count))
        any_succ, succ = self._successors(pc, ins, far, follow_shadow)
        reads, writes = _accesses(ins, self._info.info(ins))
        any_access = (ins.flow_control in (_FC.INTERRUPT, _FC.EXCEPTION) or far or ins.mnemonic in _SYSTEM
                      or (ins.op_count and ins.op0_kind == ix.OpKind.REGISTER
                          and ix.Register.ES <= ins.op0_register <= ix.Register.GS))
        return Insn(
            decoded=True,
            length=ins.len,
            text=str(ins),
            any_succ=any_succ,
            succ=tuple(sorted(succ)),
            reads=reads,
            writes=writes,
            io=ins.mnemonic in _IO,
            any_access=bool(any_access),
            movdr=ins.code in _MOV_DR,
        )

    def _successors(self, pc: int, ins: Any, far: bool, follow_shadow: bool) -> tuple[bool, set[int]]:
        """(control may go anywhere, candidate successor pcs) of the instruction at ``pc``."""
        flow = ins.flow_control
        ft = (pc + ins.len) & U64
        if flow == _FC.NEXT:
            return self._next_successors(pc, ins, ft, follow_shadow)
        if flow == _FC.CONDITIONAL_BRANCH:
            t = self._branch_targets(pc, ins, far)
            return not t, {ft} | t
        if flow in (_FC.UNCONDITIONAL_BRANCH, _FC.CALL):
            t = self._branch_targets(pc, ins, far)
            return not t, t  # no target: far branch outside real mode, syscall/sysenter
        return True, set()  # indirect branch/call, return, interrupt, exception, xbegin/xabort/xend

    def _next_successors(self, pc: int, ins: Any, ft: int, follow_shadow: bool) -> tuple[bool, set[int]]:
        any_succ = False
        succ = {ft}
        if ins.is_string_instruction and (ins.has_rep_prefix or ins.has_repne_prefix):
            succ.add(pc)  # another iteration traps with pc still at the instruction
        if ins.mnemonic in _HALT:
            any_succ = True  # wake-up may go through an interrupt handler
        if follow_shadow and _loads_ss(ins):
            # the step may land one instruction later
            nxt = self._decode(ft, follow_shadow=False)
            if nxt.decoded:
                succ.update(nxt.succ)
                any_succ |= nxt.any_succ
            else:
                any_succ = True
        return any_succ, succ

    def _branch_targets(self, pc: int, ins: Any, far: bool) -> set[int]:
        near_width = 0
        for k in range(ins.op_count):
            near_width = _NEAR_WIDTH.get(ins.op_kind(k), near_width)
        if near_width:
            mask = (1 << near_width) - 1
            rel = (ins.near_branch_target - ins.next_ip) & mask
            if rel >> (near_width - 1):
                rel -= 1 << near_width
            lin = (pc + ins.len + rel) & U64
            out = {lin}
            if near_width < 64:
                # The IP wraps inside the segment; assume a segment base
                # aligned to the operand size (true for flat and most real-mode code).
                out.add((pc & ~mask & U64) | (lin & mask))
            return out
        if far and self.bitness == 16:
            off = ins.far_branch16 if ins.op0_kind == ix.OpKind.FAR_BRANCH16 else ins.far_branch32
            return {((ins.far_branch_selector << 4) + off) & U64}
        return set()
