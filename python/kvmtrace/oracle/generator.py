"""Random, valid guest programs for ``kvmtrace fuzz``, built from the families of
:mod:`kvmtrace.oracle.families` and encoded with iced-x86's BlockEncoder.

A program is fully determined by its :class:`ProgramSpec` (campaign seed, index, mode,
length, families, and for a shrunk program the blocks it keeps), so a campaign ships
specs to its workers and a reproducer names the spec it came from. Layout: a fixed
setup (RBX = data page, RBP / FS = MMIO window), then removable blocks (one register
or data-page initialisation each, then the body), then ``OUT 0xF4, AL`` (the debug
exit, which ends both runs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import iced_x86 as ix

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError
from kvmtrace.oracle.emit import AX, BP, BX, Branch, Emitter, Item, Label, encode
from kvmtrace.oracle.families import FAMILIES, MEM_WINDOW, Ctx
from kvmtrace.program import DEFAULT_LOAD_ADDR, Program

DATA_PAGE = 0x1000  # Machine.layout["data"]: the scratch page every mode reserves
FUZZ_MEMORY_SIZE = 512 << 10  # small: cheap to copy and compare; MMIO starts right above it
DEFAULT_LENGTH = 16  # body blocks per program
DATA_STORES = 4  # data-page initialisation blocks


@dataclass(frozen=True)
class ProgramSpec:
    """Everything that determines a generated program."""

    seed: int
    index: int
    mode: str = "long"
    length: int = DEFAULT_LENGTH
    families: tuple[str, ...] = ()  # empty: the whole pool
    keep: tuple[int, ...] | None = None  # blocks kept by shrinking (None: all)
    memory_size: int = FUZZ_MEMORY_SIZE

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "index": self.index, "mode": self.mode, "length": self.length,
                "families": list(self.families), "keep": None if self.keep is None else list(self.keep),
                "memory_size": self.memory_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProgramSpec:
        keep = d.get("keep")
        return cls(int(d["seed"]), int(d["index"]), str(d.get("mode", "long")), int(d.get("length", DEFAULT_LENGTH)),
                   tuple(d.get("families") or ()), None if keep is None else tuple(keep),
                   int(d.get("memory_size", FUZZ_MEMORY_SIZE)))


@dataclass
class Block:
    family: str
    items: list[Item]


@dataclass
class GeneratedProgram:
    spec: ProgramSpec
    setup: list[Item]
    blocks: list[Block]
    exit: list[Item] = field(default_factory=list)

    @property
    def bits(self) -> int:
        return _core.MODE_BITS[self.spec.mode]

    def kept(self) -> list[int]:
        return list(range(len(self.blocks))) if self.spec.keep is None else sorted(self.spec.keep)

    def with_keep(self, keep: tuple[int, ...]) -> GeneratedProgram:
        return GeneratedProgram(replace(self.spec, keep=tuple(sorted(keep))), self.setup, self.blocks, self.exit)

    def items(self) -> list[Item]:
        """The kept blocks, with each branch to a dropped block sent to the next kept one."""
        kept = self.kept()
        out: list[Item] = list(self.setup)
        for k in kept:
            out.append(Label(local=f"block{k}"))
            out += [self._relabel(item, k, kept) for item in self.blocks[k].items]
        out.append(Label(local="end"))
        return out + self.exit

    @staticmethod
    def _relabel(item: Item, k: int, kept: list[int]) -> Item:
        def fix(label: Label) -> Label:
            if label.block is None:
                return Label(local=f"b{k}.{label.local}")
            nxt = next((b for b in kept if b >= label.block), None)
            return Label(local="end" if nxt is None else f"block{nxt}")

        if isinstance(item, Label):
            return fix(item)
        if isinstance(item, Branch):
            return Branch(item.code_name, fix(item.target))
        return item

    def code(self) -> bytes:
        return encode(self.items(), self.bits, DEFAULT_LOAD_ADDR)

    def program(self) -> Program:
        prog = Program.from_bytes(self.code(), DEFAULT_LOAD_ADDR, mode=self.spec.mode)
        prog.source = self.reproducer()
        return prog

    def families_used(self) -> list[str]:
        return [self.blocks[k].family for k in self.kept()]

    def reproducer(self, note: str = "") -> str:
        """GNU as source with the exact bytes (one ``.byte`` line per instruction, disassembled)."""
        s = self.spec
        fmt = ix.Formatter(ix.FormatterSyntax.INTEL)
        lines = ["# kvmtrace fuzz reproducer: replay with `kvmtrace diff FILE`",
                 f"# kvmtrace-mode: {s.mode}",
                 f"# spec: seed={s.seed} index={s.index} length={s.length} families={','.join(s.families) or 'all'} "
                 f"keep={'all' if s.keep is None else ','.join(map(str, s.keep))} memory_size={s.memory_size:#x}"]
        if note:
            lines += [f"# {line}" for line in note.splitlines()]
        lines.append("_start:")
        code = self.code()
        for ins in ix.Decoder(self.bits, code, ip=DEFAULT_LOAD_ADDR):
            off = ins.ip - DEFAULT_LOAD_ADDR
            raw = ", ".join(f"0x{b:02x}" for b in code[off:off + ins.len])
            lines.append(f"    .byte {raw:<48} # {ins.ip:#06x}: {fmt.format(ins)}")
        return "\n".join(lines) + "\n"


def _check(spec: ProgramSpec) -> None:
    if spec.mode not in _core.MODES:
        raise InvalidConfigError(f"invalid mode: {spec.mode!r} (expected one of {', '.join(_core.MODES)})")
    unknown = [f for f in spec.families if f not in FAMILIES]
    if unknown:
        raise InvalidConfigError(f"invalid families: {', '.join(unknown)} (the pool has {', '.join(FAMILIES)})")
    if spec.length < 0:
        raise InvalidConfigError(f"invalid length: {spec.length} (expected >= 0)")


def generate(spec: ProgramSpec) -> GeneratedProgram:
    """The program ``spec`` describes (deterministic: string seeds hash the same everywhere)."""
    _check(spec)
    rng = random.Random(f"kvmtrace-fuzz:{spec.seed}:{spec.index}:{spec.mode}")
    em = Emitter(_core.MODE_BITS[spec.mode])
    ctx = Ctx(rng, em, spec.mode, DATA_PAGE)
    blocks = [Block("init", [em.mov_imm(r, em.bits, rng.getrandbits(em.bits))]) for r in ctx.free]
    for _ in range(DATA_STORES):
        blocks.append(Block("init", [em.mi("MOV", 32, em.mem(BX, 4 * rng.randrange(MEM_WINDOW // 4)),
                                           rng.getrandbits(32))]))
    ctx.blocks = len(blocks) + spec.length
    pool = list(spec.families or FAMILIES)
    for b in range(spec.length):
        ctx.block = len(blocks)
        family = rng.choice(pool)
        blocks.append(Block(family, FAMILIES[family](ctx)))
    exit_: list[Item] = [ix.Instruction.create_u32_reg(ix.Code.OUT_IMM8_AL, _core.EXIT_PORT, ix.Register.AL)]
    return GeneratedProgram(spec, _setup(em, spec), blocks, exit_)


def _setup(em: Emitter, spec: ProgramSpec) -> list[Item]:
    """RBX = data page, RBP = MMIO window (real mode: FS = window >> 4, BP = 0)."""
    out: list[Item] = [em.mov_imm(BX, em.bits, DATA_PAGE)]
    if em.bits == 16:
        code = ix.Code.MOV_SREG_RM16
        out += [em.mov_imm(AX, 16, spec.memory_size >> 4),
                ix.Instruction.create_reg_reg(code, ix.Register.FS, ix.Register.AX), em.mov_imm(BP, 16, 0)]
    else:
        out.append(em.mov_imm(BP, em.bits, spec.memory_size))
    return out
