"""Instruction building for the program generator, on iced-x86's ``Instruction.create_*``
and ``BlockEncoder`` (no hand-written encodings): register and memory operands by size
for a mode's bitness, and the ``Code`` of each mnemonic/operand form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import iced_x86 as ix

if TYPE_CHECKING:
    # iced's register and instruction-form values are plain ints at run time
    # (``ix.Register.AL`` is an int); its stubs type them as these IntEnum classes.
    from iced_x86._iced_x86_py import Code as IcedCode
    from iced_x86._iced_x86_py import Register as IcedRegister

C, R = ix.Code, ix.Register
SIZES = (8, 16, 32, 64)
_SIZE_NAME = {8: "8", 16: "16", 32: "32", 64: "64"}
_GPR = {  # register number -> names by size (8-bit names need REX for sil/dil/r8b-r15b)
    0: ("AL", "AX", "EAX", "RAX"), 1: ("CL", "CX", "ECX", "RCX"), 2: ("DL", "DX", "EDX", "RDX"),
    3: ("BL", "BX", "EBX", "RBX"), 4: ("SPL", "SP", "ESP", "RSP"), 5: ("BPL", "BP", "EBP", "RBP"),
    6: ("SIL", "SI", "ESI", "RSI"), 7: ("DIL", "DI", "EDI", "RDI"),
    **{n: (f"R{n}L", f"R{n}W", f"R{n}D", f"R{n}") for n in range(8, 16)},
}
AX, CX, DX, BX, SP, BP, SI, DI = range(8)


@dataclass(frozen=True)
class Label:
    """A position in the generated code: ``local`` names a label inside one block;
    ``block`` is the index of a later block (a forward branch target)."""

    local: str | None = None
    block: int | None = None


@dataclass(frozen=True)
class Branch:
    """A branch to a Label, encoded once the code's layout is known."""

    code_name: str  # e.g. "JE_REL8" (the mode suffix is added), "CALL_REL", "LOOP_REL8"
    target: Label


Item = ix.Instruction | Label | Branch


class Emitter:
    """Operands and instructions for one bitness (16 real, 32 protected, 64 long)."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.sizes = SIZES if bits == 64 else SIZES[:3]

    # Operands ------------------------------------------------------------------
    def reg(self, num: int, size: int) -> IcedRegister:
        return getattr(R, _GPR[num][SIZES.index(size)])

    def addr_reg(self, num: int) -> IcedRegister:
        """The register ``num`` at the mode's address size (BX / EBX / RBX)."""
        return self.reg(num, self.bits)

    def mem(self, base: int, disp: int, seg: IcedRegister = R.NONE) -> ix.MemoryOperand:
        # iced's displ_size: 1 for a disp8, else the address size in bytes (disp16, disp32, disp32 in 64-bit)
        wide = {16: 2, 32: 4, 64: 8}[self.bits]
        return ix.MemoryOperand(self.addr_reg(base), displ=disp, displ_size=1 if -128 <= disp < 128 else wide, seg=seg)

    @staticmethod
    def code(name: str) -> IcedCode:
        return getattr(C, name)

    def stack_size(self) -> int:
        return self.bits

    # Instructions by form ------------------------------------------------------
    def rr(self, mnem: str, size: int, dst: int, src: int) -> ix.Instruction:
        s = _SIZE_NAME[size]
        return ix.Instruction.create_reg_reg(self.code(f"{mnem}_RM{s}_R{s}"), self.reg(dst, size), self.reg(src, size))

    def rm(self, mnem: str, size: int, dst: int, mem: ix.MemoryOperand) -> ix.Instruction:
        s = _SIZE_NAME[size]
        return ix.Instruction.create_reg_mem(self.code(f"{mnem}_R{s}_RM{s}"), self.reg(dst, size), mem)

    def mr(self, mnem: str, size: int, mem: ix.MemoryOperand, src: int) -> ix.Instruction:
        s = _SIZE_NAME[size]
        return ix.Instruction.create_mem_reg(self.code(f"{mnem}_RM{s}_R{s}"), mem, self.reg(src, size))

    def ri(self, mnem: str, size: int, dst: int, imm: int) -> ix.Instruction:
        code, value = self._imm_form(mnem, size, imm)
        if value < 0:
            return ix.Instruction.create_reg_i32(code, self.reg(dst, size), value)
        return ix.Instruction.create_reg_u32(code, self.reg(dst, size), value)

    def mi(self, mnem: str, size: int, mem: ix.MemoryOperand, imm: int) -> ix.Instruction:
        code, value = self._imm_form(mnem, size, imm)
        if value < 0:
            return ix.Instruction.create_mem_i32(code, mem, value)
        return ix.Instruction.create_mem_u32(code, mem, value)

    def _imm_form(self, mnem: str, size: int, imm: int) -> tuple[IcedCode, int]:
        if size == 64:  # imm32, sign-extended to 64 bits
            v = imm & 0xFFFFFFFF
            return self.code(f"{mnem}_RM64_IMM32"), v - (1 << 32) if v >> 31 else v
        return self.code(f"{mnem}_RM{size}_IMM{size}"), imm & ((1 << size) - 1)

    def mov_imm(self, dst: int, size: int, imm: int) -> ix.Instruction:
        s = _SIZE_NAME[size]
        if size == 64:
            return ix.Instruction.create_reg_u64(C.MOV_R64_IMM64, self.reg(dst, 64), imm & ((1 << 64) - 1))
        return ix.Instruction.create_reg_u32(self.code(f"MOV_R{s}_IMM{s}"), self.reg(dst, size), imm & ((1 << size) - 1))

    def unary(self, mnem: str, size: int, operand: int | ix.MemoryOperand) -> ix.Instruction:
        code = self.code(f"{mnem}_RM{_SIZE_NAME[size]}")
        if isinstance(operand, ix.MemoryOperand):
            return ix.Instruction.create_mem(code, operand)
        return ix.Instruction.create_reg(code, self.reg(operand, size))

    def shift(self, mnem: str, size: int, dst: int, count: int | None) -> ix.Instruction:
        """``count`` None: by CL; 1: the by-one form; else an imm8."""
        s = _SIZE_NAME[size]
        if count is None:
            return ix.Instruction.create_reg_reg(self.code(f"{mnem}_RM{s}_CL"), self.reg(dst, size), R.CL)
        if count == 1:
            return ix.Instruction.create_reg_u32(self.code(f"{mnem}_RM{s}_1"), self.reg(dst, size), 1)
        return ix.Instruction.create_reg_u32(self.code(f"{mnem}_RM{s}_IMM8"), self.reg(dst, size), count & 0xFF)

    def plain(self, name: str) -> ix.Instruction:
        return ix.Instruction.create(self.code(name))

    def sized(self, stem: str) -> str:
        """A Code name that carries the mode's operand size: PUSHF -> PUSHFW/PUSHFD/PUSHFQ."""
        return stem + {16: "W", 32: "D", 64: "Q"}[self.bits]

    def branch_code(self, name: str) -> IcedCode:
        if name.startswith("LOOP_REL8"):
            return self.code(f"{name}_{self.bits}_{ {16: 'CX', 32: 'ECX', 64: 'RCX'}[self.bits]}")
        if name == "CALL_REL":
            return self.code({16: "CALL_REL16", 32: "CALL_REL32_32", 64: "CALL_REL32_64"}[self.bits])
        return self.code(f"{name}_{self.bits}")


def encode(items: list[Item], bits: int, base: int) -> bytes:
    """Lay ``items`` out at ``base`` with iced's BlockEncoder (which sizes and fixes the branches).

    Each instruction gets a unique placeholder ip; a label takes the ip of the instruction
    after it; branches point at those ips and the encoder rewrites them to the real layout.
    Block labels are resolved by the caller into local labels first.
    """
    em = Emitter(bits)
    placeholder, at = 0x10, {}  # small: the ips must fit the mode's 16-bit address space too
    pending: list[str] = []
    laid: list[ix.Instruction | Branch] = []
    for item in items:
        if isinstance(item, Label):
            pending.append(item.local or f"block{item.block}")
            continue
        laid.append(item)
        for name in pending:
            at[name] = placeholder + len(laid)
        pending.clear()
    end = placeholder + len(laid) + 1
    for name in pending:
        at[name] = end
    out = []
    for n, item in enumerate(laid, start=1):
        if isinstance(item, Branch):
            t = item.target
            ins = ix.Instruction.create_branch(em.branch_code(item.code_name), at[t.local or f"block{t.block}"])
        else:
            ins = item.copy()
        ins.ip = placeholder + n
        out.append(ins)
    if pending:  # a branch to the very end: give it an instruction to land on
        nop = ix.Instruction.create(C.NOPW if bits == 16 else C.NOPD)
        nop.ip = end
        out.append(nop)
    enc = ix.BlockEncoder(bits)
    enc.add_many(out)
    return bytes(enc.encode(base))
