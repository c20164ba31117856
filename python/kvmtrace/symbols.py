"""Symbolisation and disassembly of trace pcs.

pcs map to program symbols (``name+0xoff``) and, on request, to instructions
decoded with iced-x86 from the code bytes a trace carries (``trace.code_regions``)
or from a :class:`~kvmtrace.program.Program`'s segments. Every function here works
on distinct pcs (``np.unique``), so a trace of millions of events costs one lookup
per distinct address.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kvmtrace._core import Dr6
from kvmtrace.program import MODE_BITS, Program, Segment, Symbol

__all__ = [
    "CodeMemory",
    "Disassembler",
    "HotPc",
    "disassemble",
    "hottest",
    "program_from_trace",
    "resolve_program",
    "symbolize",
]

# Control-flow classes used to rebuild call stacks from single-step traces.
FLOW_OTHER, FLOW_CALL, FLOW_RET, FLOW_INT = 0, 1, 2, 3


class CodeMemory:
    """Guest code bytes by address, from ``(addr, bytes)`` regions (first region wins on overlap)."""

    def __init__(self, regions: Iterable[tuple[int, bytes]] = ()) -> None:
        regs = [(int(a), bytes(b)) for a, b in regions if len(b)]
        self._regions = sorted(regs, key=lambda r: r[0])
        self._starts = [a for a, _ in self._regions]

    @classmethod
    def for_trace(cls, trace: Any, program: Program | None = None) -> CodeMemory:
        regions = list(getattr(trace, "code_regions", None) or [])
        if program is not None:
            regions += [(s.addr, s.data) for s in program.segments]
        return cls(regions)

    @property
    def regions(self) -> list[tuple[int, bytes]]:
        return list(self._regions)

    def read(self, addr: int, size: int = 15) -> bytes:
        """Up to ``size`` bytes at ``addr`` (fewer at the end of a region, b"" outside every region)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        while i >= 0:
            a, b = self._regions[i]
            if a <= addr < a + len(b):
                return b[addr - a:addr - a + size]
            i -= 1
        return b""

    def __bool__(self) -> bool:
        return bool(self._regions)


@dataclass(frozen=True)
class Decoded:
    pc: int
    length: int
    flow: int  # FLOW_*
    text: str
    target: int | None  # near branch target, if any


class Disassembler:
    """Decodes (and caches) the instruction at a pc with iced-x86."""

    def __init__(self, memory: CodeMemory, bits: int, program: Program | None = None) -> None:
        import iced_x86

        self._iced = iced_x86
        self.memory, self.bits, self.program = memory, bits, program
        self._cache: dict[int, Decoded | None] = {}
        f = iced_x86.Formatter(iced_x86.FormatterSyntax.INTEL)
        f.hex_prefix, f.hex_suffix = "0x", ""
        f.uppercase_hex = False
        f.branch_leading_zeros = False
        f.space_after_operand_separator = True
        self._fmt = f
        fc = iced_x86.FlowControl
        ok = iced_x86.OpKind
        self._near = {ok.NEAR_BRANCH16, ok.NEAR_BRANCH32, ok.NEAR_BRANCH64}
        self._flow = {fc.CALL: FLOW_CALL, fc.INDIRECT_CALL: FLOW_CALL, fc.RETURN: FLOW_RET, fc.INTERRUPT: FLOW_INT}

    @classmethod
    def for_trace(cls, trace: Any, program: Program | None = None, mode: str | None = None) -> Disassembler:
        name: str = mode or getattr(trace, "mode", None) or "long"
        bits = MODE_BITS.get(name, 64)
        return cls(CodeMemory.for_trace(trace, program), bits, program)

    def decode(self, pc: int) -> Decoded | None:
        """The instruction at ``pc``, or None when no code bytes are known there or they do not decode."""
        pc = int(pc)
        if pc in self._cache:
            return self._cache[pc]
        data = self.memory.read(pc, 15)
        d = None
        if data:
            ins = self._iced.Decoder(self.bits, data, ip=pc).decode()
            if not ins.is_invalid and ins.len <= len(data):
                text = self._fmt.format(ins)
                target = None
                if ins.op_count and ins.op0_kind in self._near:
                    target = ins.near_branch_target
                    if self.program is not None:
                        text += f" <{self.program.symbolize(target)}>"
                d = Decoded(pc, ins.len, self._flow.get(ins.flow_control, FLOW_OTHER), text, target)
        self._cache[pc] = d
        return d

    def text(self, pc: int) -> str:
        d = self.decode(pc)
        return d.text if d is not None else "(no code bytes)" if not self.memory.read(pc, 1) else "(bad instruction)"

    def flows(self, pcs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow class, length) per pc of an array, decoding each distinct pc once."""
        pcs = np.asarray(pcs, dtype=np.uint64)
        if pcs.size == 0:
            return np.zeros(0, np.uint8), np.zeros(0, np.uint64)
        uniq, inv = np.unique(pcs, return_inverse=True)
        kinds = np.zeros(uniq.size, np.uint8)
        lens = np.zeros(uniq.size, np.uint64)
        for j, pc in enumerate(uniq.tolist()):
            d = self.decode(pc)
            if d is not None:
                kinds[j], lens[j] = d.flow, d.length
        return kinds[inv], lens[inv]


def program_from_trace(trace: Any) -> Program | None:
    """The symbol table a stored trace carries (``metadata["symbols"]``), as a Program, else None."""
    md = getattr(trace, "metadata", None) or {}
    syms = md.get("symbols")
    if not syms:
        return None
    symbols = {}
    for s in syms:
        name, addr, size, kind = s
        symbols[str(name)] = Symbol(str(name), int(addr), int(size), str(kind))
    segs = [Segment(int(a), bytes(b), len(b)) for a, b in (getattr(trace, "code_regions", None) or [])]
    entry = md.get("entry")
    bits = MODE_BITS.get(getattr(trace, "mode", "long") or "long", 64)
    return Program(segs, int(entry) if entry is not None else (segs[0].addr if segs else 0), bits, symbols)


def resolve_program(trace: Any, program: Program | None = None) -> Program | None:
    """``program`` if given, else the symbols stored with the trace."""
    return program if program is not None else program_from_trace(trace)


def _name(program: Program | None, pc: int) -> str:
    return program.symbolize(pc) if program is not None else f"{pc:#x}"


def symbolize(trace: Any, program: Program | None = None) -> list[str]:
    """``name+0xoff`` (or hex) for every event's pc. ``trace`` may also be an array of pcs."""
    pcs = np.asarray(trace.pc if hasattr(trace, "pc") else trace, dtype=np.uint64)
    if hasattr(trace, "pc"):
        program = resolve_program(trace, program)
    if pcs.size == 0:
        return []
    uniq, inv = np.unique(pcs, return_inverse=True)
    names = [_name(program, pc) for pc in uniq.tolist()]
    return [names[i] for i in inv.tolist()]


@dataclass(frozen=True)
class HotPc:
    pc: int
    count: int
    share: float  # fraction of the trace's events
    symbol: str
    instruction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"pc": self.pc, "count": self.count, "share": self.share, "symbol": self.symbol,
                "instruction": self.instruction}


def _window_rows(trace: Any, window: int | bool | None) -> np.ndarray:
    """The pcs of the rows in ``window`` (an index, True for any window, None for all rows)."""
    pcs = np.asarray(trace.pc, dtype=np.uint64)
    if window is None:
        return pcs
    labels = getattr(trace, "window", None)
    if labels is None:
        raise ValueError("window= needs a trace recorded with windows (Machine.trace(window=...))")
    keep = labels >= 0 if window is True else labels == int(window)
    return pcs[keep]


def hottest(
    trace: Any, program: Program | None = None, n: int = 10, *, disassemble: bool = False,
    counts: tuple[np.ndarray, np.ndarray] | None = None, window: int | bool | None = None, by: str = "pc",
) -> list[HotPc]:
    """The ``n`` pcs (``by="symbol"``: functions) with most events, symbolised (and
    disassembled if asked).

    ``window`` limits the count to the rows of one window (its index) or, with True, of
    every window. ``counts`` = (distinct pcs, their counts) may be given instead of
    scanning ``trace.pc``.
    """
    if by not in ("pc", "symbol"):
        raise ValueError(f"by must be 'pc' or 'symbol', not {by!r}")
    program = resolve_program(trace, program)
    if counts is None:
        vals, cnt = np.unique(_window_rows(trace, window), return_counts=True)
    else:
        vals, cnt = counts
    total = int(cnt.sum()) if len(cnt) else 0
    if by == "symbol":
        return _hottest_symbols(program, vals, cnt, total, n)
    order = np.argsort(-cnt.astype(np.int64), kind="stable")[:n]
    dis = Disassembler.for_trace(trace, program) if disassemble else None
    out = []
    for j in order.tolist():
        pc, c = int(vals[j]), int(cnt[j])
        out.append(HotPc(pc, c, c / total if total else 0.0, _name(program, pc),
                         dis.text(pc) if dis is not None else None))
    return out


def _hottest_symbols(program: Program | None, vals: np.ndarray, cnt: np.ndarray, total: int,
                     n: int) -> list[HotPc]:
    """Counts per function (the symbol a pc falls in); ``pc`` is the function's lowest pc seen."""
    by_name: dict[str, list[int]] = {}
    for pc, c in zip(vals.tolist(), cnt.tolist()):
        name = _name(program, pc).split("+")[0]
        acc = by_name.setdefault(name, [pc, 0])
        acc[0], acc[1] = min(acc[0], pc), acc[1] + c
    ranked = sorted(by_name.items(), key=lambda kv: (-kv[1][1], kv[1][0]))[:n]
    return [HotPc(pc, c, c / total if total else 0.0, name) for name, (pc, c) in ranked]


def disassemble(trace: Any, pc: int, count: int = 1, program: Program | None = None,
                mode: str | None = None) -> list[str]:
    """``count`` instructions from ``pc`` as ``"0x8000 <sym>: text"`` lines, decoded from the trace's code."""
    program = resolve_program(trace, program)
    dis = Disassembler.for_trace(trace, program, mode)
    out = []
    for _ in range(max(1, count)):
        d = dis.decode(pc)
        out.append(f"{pc:#x} <{_name(program, pc)}>: {dis.text(pc)}")
        if d is None:
            break
        pc += d.length
    return out


def dr6_causes(v: int) -> str:
    """The DR6 status bits set in ``v`` (B0-B3, BD, BS, BT; RTM=0 if bit 16 is clear),
    ``-`` when none is: ``Dr6.names`` in the tables' spelling of "none"."""
    names = Dr6.names(int(v))
    return "-" if names == "none" else names

