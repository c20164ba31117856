"""The instruction pool of ``kvmtrace fuzz``: families of small, self-contained blocks.

Every block keeps the sandbox: RBX holds the data page (``Machine.layout["data"]``),
RBP the MMIO window (in real mode FS holds it and BP is 0), RSP stays in the stack
region (stack blocks are balanced), branches only go forward or round a bounded loop,
memory operands stay in the data page or the MMIO window, and nothing sets TF or
faults (divisors are made non-zero, BSF/BSR sources non-zero, CMPXCHG16B operands
16-byte aligned). So any subset of a program's blocks is a program too: the shrinker
drops blocks freely.

========  ======================================================================
family    instructions
========  ======================================================================
alu       ADD OR ADC SBB AND SUB XOR CMP TEST: reg/reg, reg/imm, reg/mem, mem/reg, mem/imm, 8-64 bit
unary     INC DEC NEG NOT on a register or memory
shift     SHL SHR SAR ROL ROR RCL RCR by 1, by an immediate, by CL
muldiv    MUL IMUL (1, 2 and 3 operands), DIV and IDIV with a guarded divisor
bits      BT BTS BTR BTC (immediate and register offset), BSF BSR (non-zero source), BSWAP
move      MOV (all forms), MOVZX MOVSX, XCHG, LEA, CMOVcc, SETcc, CBW/CWDE/CDQE, CWD/CDQ/CQO
stack     PUSH/POP of registers and immediates, PUSHF/POPF (POPF never sets TF)
flags     CLC STC CMC CLD STD LAHF SAHF STI CLI
branch    Jcc and JMP forward over later blocks, CALL/RET, LOOP with a count of 1-4
string    MOVS STOS LODS CMPS SCAS (B/W/D/Q) with no prefix, REP, REPE, REPNE; CLD or STD
atomic    XADD, CMPXCHG, LOCK ADD/OR/AND/SUB/XOR/INC/DEC, XCHG with memory, CMPXCHG8B, CMPXCHG16B (long mode)
port      IN/OUT with an immediate port or DX (8/16/32 bit), INS/OUTS with REP, console writes (0xE9)
mmio      MOV to and from the MMIO window, MOV of an immediate, ALU read-modify-write on MMIO
ss_load   MOV SS (reloading SS), POP SS (real and protected mode)
cpuid     CPUID of leaf 0, 1, 7, 0x80000000 or 0x80000001
misc      NOP, HLT, RDTSC
========  ======================================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import iced_x86 as ix

from kvmtrace.oracle.emit import AX, BP, BX, CX, DI, DX, SI, Branch, Emitter, Item, Label
import kvmtrace._core as _core
from kvmtrace.oracle.state import EFLAGS_BIT

R = ix.Register
ALU_OPS = ("ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP")
SHIFT_OPS = ("SHL", "SHR", "SAR", "ROL", "ROR", "RCL", "RCR")
CONDITIONS = ("E", "NE", "B", "AE", "BE", "A", "L", "GE", "LE", "G", "S", "NS", "O", "NO", "P", "NP")
MEM_WINDOW = 0x40  # general memory operands: [RBX + 0 .. 0x40)
STRING_SRC, STRING_DST = 0x80, 0x180  # string operands: two 0x100-byte areas of the data page
PORTS = (0x80, 0x84, 0x88, 0x8C)  # immediate ports (no device of the machine answers them)
DX_PORTS = (0x300, 0x302, 0x304, 0x310)
CONSOLE = _core.CONSOLE_PORT  # bytes written there are the console output, compared too
CPUID_LEAVES = (0, 1, 7, 0x80000000, 0x80000001)
# POPF may load these: the arithmetic flags, DF and IF; never TF (the host's single-step).
POPF_FLAGS = sum(1 << EFLAGS_BIT[f] for f in ("CF", "PF", "AF", "ZF", "SF", "IF", "DF", "OF"))


@dataclass
class Ctx:
    rng: random.Random
    em: Emitter
    mode: str
    data: int  # guest-physical address of the data page
    block: int = 0  # index of the block being generated
    blocks: int = 0  # blocks in the program body

    @property
    def bits(self) -> int:
        return self.em.bits

    @property
    def free(self) -> list[int]:
        """Registers a block may clobber (not RBX, RSP, RBP: the sandbox's)."""
        return [AX, CX, DX, SI, DI, *(range(8, 16) if self.bits == 64 else ())]

    def reg(self, exclude: tuple[int, ...] = ()) -> int:
        return self.rng.choice([r for r in self.free if r not in exclude])

    def size(self, min_size: int = 8) -> int:
        return self.rng.choice([s for s in self.em.sizes if s >= min_size])

    def reg8_ok(self, r: int) -> bool:
        return self.bits == 64 or r in (AX, CX, DX)  # SIL/DIL need a REX prefix

    def sized_reg(self, min_size: int = 8, exclude: tuple[int, ...] = ()) -> tuple[int, int]:
        while True:
            size, r = self.size(min_size), self.reg(exclude)
            if size > 8 or self.reg8_ok(r):
                return size, r

    def mem(self, size: int, align: int = 1) -> ix.MemoryOperand:
        disp = self.rng.randrange(0, MEM_WINDOW - size // 8 + 1)
        return self.em.mem(BX, disp - disp % align)

    def mmio(self, size: int) -> ix.MemoryOperand:
        seg = R.FS if self.bits == 16 else R.NONE
        return self.em.mem(BP, self.rng.randrange(0, 0x100 - size // 8) & ~(size // 8 - 1), seg)

    def imm(self, size: int) -> int:
        return self.rng.getrandbits(size)


def alu(c: Ctx) -> list[Item]:
    size, dst = c.sized_reg()
    op, form = c.rng.choice(ALU_OPS + ("TEST",)), c.rng.randrange(5)
    if op == "TEST":
        form = c.rng.choice((0, 1, 3))
    if form == 0:
        _, src = c.sized_reg(size)
        while size == 8 and not c.reg8_ok(src):
            src = c.reg()
        return [c.em.rr(op, size, dst, src)]
    if form == 1:
        return [c.em.ri(op, size, dst, c.imm(size))]
    if form == 2:
        return [c.em.rm(op, size, dst, c.mem(size))]
    if form == 3:
        return [c.em.mr(op, size, c.mem(size), dst)]
    return [c.em.mi(op, size, c.mem(size), c.imm(size))]


def unary(c: Ctx) -> list[Item]:
    size, r = c.sized_reg()
    op = c.rng.choice(("INC", "DEC", "NEG", "NOT"))
    return [c.em.unary(op, size, c.mem(size) if c.rng.random() < 0.4 else r)]


def shift(c: Ctx) -> list[Item]:
    size, r = c.sized_reg(exclude=(CX,))
    count = c.rng.choice((None, 1, c.rng.randrange(0, 2 * size)))
    return [c.em.shift(c.rng.choice(SHIFT_OPS), size, r, count)]


def muldiv(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(5)
    if kind == 0:
        size, r = c.sized_reg()
        return [em.unary(c.rng.choice(("MUL", "IMUL")), size, r)]
    if kind == 1:
        size, r = c.sized_reg(16)
        return [em.rm("IMUL", size, r, c.mem(size)) if c.rng.random() < 0.3 else
                ix.Instruction.create_reg_reg(em.code(f"IMUL_R{size}_RM{size}"), em.reg(r, size), em.reg(c.reg(), size))]
    if kind == 2:
        size, r = c.sized_reg(16)
        code = em.code(f"IMUL_R{size}_RM{size}_IMM{min(size, 32)}")
        imm = c.imm(min(size, 32))
        if size == 64 and imm >> 31:
            imm -= 1 << 32
        mk = ix.Instruction.create_reg_reg_i32 if imm < 0 else ix.Instruction.create_reg_reg_u32
        return [mk(code, em.reg(r, size), em.reg(c.reg(), size), imm)]
    size = c.size(16)
    d = c.reg((AX, DX))
    if kind == 3:  # DIV: RDX = 0 and a divisor >= 1, so the quotient fits
        return [em.rr("XOR", size, DX, DX), em.ri("OR", size, d, 1), em.unary("DIV", size, d)]
    # IDIV: sign-extend RAX into RDX and use a positive odd divisor (no INT_MIN / -1)
    return [em.plain({16: "CWD", 32: "CDQ", 64: "CQO"}[size]), em.shift("SHR", size, d, 1), em.ri("OR", size, d, 1),
            em.unary("IDIV", size, d)]


def bits(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(4)
    size, r = c.sized_reg(16)
    if kind == 0:
        op = c.rng.choice(("BT", "BTS", "BTR", "BTC"))
        return [ix.Instruction.create_reg_u32(em.code(f"{op}_RM{size}_IMM8"), em.reg(r, size), c.rng.randrange(256))]
    if kind == 1:
        op = c.rng.choice(("BT", "BTS", "BTR", "BTC"))
        return [em.rr(op, size, r, c.reg())]
    if kind == 2:
        src = c.reg()
        return [em.ri("OR", size, src, 1 << c.rng.randrange(min(size, 31))),
                ix.Instruction.create_reg_reg(em.code(f"{c.rng.choice(('BSF', 'BSR'))}_R{size}_RM{size}"),
                                              em.reg(r, size), em.reg(src, size))]
    size = c.size(32)
    return [ix.Instruction.create_reg(em.code(f"BSWAP_R{size}"), em.reg(r, size))]


def move(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(9)
    size, r = c.sized_reg()
    if kind == 0:
        return [em.mov_imm(r, size, c.imm(size))]
    if kind == 1:
        return [em.rm("MOV", size, r, c.mem(size)) if c.rng.random() < 0.5 else em.mr("MOV", size, c.mem(size), r)]
    if kind == 2:
        return [em.mi("MOV", size, c.mem(size), c.imm(size))]
    if kind == 3:
        size, r = c.sized_reg(16)
        src_size = c.rng.choice([s for s in (8, 16) if s < size])
        op = c.rng.choice(("MOVZX", "MOVSX"))
        return [ix.Instruction.create_reg_mem(em.code(f"{op}_R{size}_RM{src_size}"), em.reg(r, size), c.mem(src_size))]
    if kind == 4:
        return [em.rr("XCHG", size, r, c.reg()) if size > 8 else em.mr("XCHG", size, c.mem(size), r)]
    if kind == 5:
        size, r = c.sized_reg(16)
        mem = ix.MemoryOperand(em.addr_reg(BX), em.addr_reg(c.reg()) if c.bits > 16 else R.SI,
                               c.rng.choice((1, 2, 4, 8)) if c.bits > 16 else 1, c.rng.randrange(256), 1)
        return [ix.Instruction.create_reg_mem(em.code(f"LEA_R{size}_M"), em.reg(r, size), mem)]
    if kind == 6:
        size, r = c.sized_reg(16)
        code = em.code(f"CMOV{c.rng.choice(CONDITIONS)}_R{size}_RM{size}")
        return [ix.Instruction.create_reg_reg(code, em.reg(r, size), em.reg(c.reg(), size))]
    if kind == 7:
        code = em.code(f"SET{c.rng.choice(CONDITIONS)}_RM8")
        return [ix.Instruction.create_mem(code, c.mem(8))]
    return [em.plain(c.rng.choice(("CBW", "CWDE", "CWD", "CDQ") + (("CDQE", "CQO") if c.bits == 64 else ())))]


def stack(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(4)
    w = 64 if c.bits == 64 else c.rng.choice((16, 32))
    push_r = f"PUSH_R{w}"
    if kind == 0:
        a, b = c.reg(), c.reg()
        return [ix.Instruction.create_reg(em.code(push_r), em.reg(a, w)),
                ix.Instruction.create_reg(em.code(f"POP_R{w}"), em.reg(b, w))]
    if kind == 1:
        code = {16: "PUSH_IMM16", 32: "PUSHD_IMM32", 64: "PUSHQ_IMM32"}[c.bits]
        return [ix.Instruction.create_i32(em.code(code), c.rng.randrange(-(1 << 15), 1 << 15)),
                ix.Instruction.create_reg(em.code(f"POP_R{c.bits}"), em.reg(c.reg(), c.bits))]
    if kind == 2:
        return [em.plain(em.sized("PUSHF")), ix.Instruction.create_reg(em.code(f"POP_R{c.bits}"), em.reg(c.reg(), c.bits))]
    r = c.reg()
    return [em.mov_imm(r, 32, c.rng.getrandbits(32) & POPF_FLAGS),
            ix.Instruction.create_reg(em.code(f"PUSH_R{c.bits}"), em.reg(r, c.bits)), em.plain(em.sized("POPF"))]


def flags(c: Ctx) -> list[Item]:
    return [c.em.plain(c.rng.choice(("CLC", "STC", "CMC", "CLD", "STD", "LAHF", "SAHF", "STI", "CLI")))]


def branch(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(4)
    target = Label(block=min(c.block + 1 + c.rng.randrange(3), c.blocks))
    if kind == 0:
        return [Branch(f"J{c.rng.choice(CONDITIONS)}_REL8", target)]
    if kind == 1:
        return [Branch("JMP_REL8", target)]
    if kind == 2:  # a local call: CALL f; JMP over; f: body; RET; over:
        ret = em.plain({16: "RETNW", 32: "RETND", 64: "RETNQ"}[c.bits])
        return [Branch("CALL_REL", Label("f")), Branch("JMP_REL8", Label("over")), Label("f"), *alu(c), ret,
                Label("over")]
    body = [i for i in alu(c) if isinstance(i, ix.Instruction) and not _uses_cx(i)] or [em.plain("NOPD" if c.bits > 16 else "NOPW")]
    return [em.mov_imm(CX, c.bits if c.bits < 64 else 32, c.rng.randint(1, 4)), Label("loop"), *body,
            Branch("LOOP_REL8", Label("loop"))]


def _uses_cx(ins: ix.Instruction) -> bool:
    return any(ix.RegisterExt.is_gpr(ins.op_register(k)) and
               ix.RegisterExt.full_register(ins.op_register(k)) == R.RCX for k in range(ins.op_count))


def string(c: Ctx) -> list[Item]:
    em, rng = c.em, c.rng
    op = rng.choice(("MOVS", "STOS", "LODS", "CMPS", "SCAS"))
    width = rng.choice([w for w in ("B", "W", "D", "Q") if w != "Q" or c.bits == 64])
    prefix = rng.choice(("", "REP_") if op in ("MOVS", "STOS", "LODS") else ("", "REPE_", "REPNE_"))
    down = rng.random() < 0.3
    count = rng.randrange(0, 9)
    span = count * {"B": 1, "W": 2, "D": 4, "Q": 8}[width]
    src, dst = STRING_SRC + rng.randrange(0x40), STRING_DST + rng.randrange(0x40)
    if down:
        src, dst = src + span, dst + span
    asz = 32 if c.bits > 16 else 16
    out: list[Item] = [em.plain("STD" if down else "CLD"), em.mov_imm(SI, asz, c.data + src),
                       em.mov_imm(DI, asz, c.data + dst), em.mov_imm(CX, asz, count)]
    out.append(getattr(ix.Instruction, f"create_{prefix.lower()}{op.lower()}{width.lower()}")(c.bits))
    return out


def atomic(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(5 + (c.bits == 64))
    size, r = c.sized_reg()
    if kind == 0:
        return [em.mr(c.rng.choice(("XADD", "CMPXCHG")), size, c.mem(size), r)]
    if kind == 1:
        return [em.rr(c.rng.choice(("XADD", "CMPXCHG")), size, r, c.reg()) if size > 8 else em.plain("NOPD")]
    if kind == 2:
        ins = em.mr(c.rng.choice(("ADD", "OR", "AND", "SUB", "XOR")), size, c.mem(size), r)
        ins.has_lock_prefix = True
        return [ins]
    if kind == 3:
        ins = em.unary(c.rng.choice(("INC", "DEC")), size, c.mem(size))
        ins.has_lock_prefix = True
        return [ins]
    if kind == 4:
        ins = ix.Instruction.create_mem(em.code("CMPXCHG8B_M64"), c.mem(64))
        ins.has_lock_prefix = c.rng.random() < 0.5
        return [ins]
    ins = ix.Instruction.create_mem(em.code("CMPXCHG16B_M128"), c.mem(64, align=16))
    ins.has_lock_prefix = c.rng.random() < 0.5
    return [ins]


def port(c: Ctx) -> list[Item]:
    em, kind, rng = c.em, c.rng.randrange(4), c.rng
    size = rng.choice((8, 16, 32))
    acc = {8: "AL", 16: "AX", 32: "EAX"}[size]
    if kind == 0:
        p = rng.choice(PORTS + (CONSOLE,))
        if rng.random() < 0.5 and p != CONSOLE:
            return [ix.Instruction.create_reg_u32(em.code(f"IN_{acc}_IMM8"), getattr(R, acc), p)]
        return [ix.Instruction.create_u32_reg(em.code(f"OUT_IMM8_{acc}"), p, getattr(R, acc))]
    if kind == 1:
        p = rng.choice(DX_PORTS)
        io = (ix.Instruction.create_reg_reg(em.code(f"IN_{acc}_DX"), getattr(R, acc), R.DX) if rng.random() < 0.5
              else ix.Instruction.create_reg_reg(em.code(f"OUT_DX_{acc}"), R.DX, getattr(R, acc)))
        return [em.mov_imm(DX, 16, p), io]
    # INS / OUTS with REP and a small count
    width = {8: "b", 16: "w", 32: "d"}[size]
    asz = 32 if c.bits > 16 else 16
    op = rng.choice(("ins", "outs"))
    reg_setup = [em.plain("CLD"), em.mov_imm(DX, 16, rng.choice(DX_PORTS)), em.mov_imm(CX, asz, rng.randrange(0, 5)),
                 em.mov_imm(SI, asz, c.data + STRING_SRC), em.mov_imm(DI, asz, c.data + STRING_DST)]
    rep = rng.random() < 0.7
    return [*reg_setup, getattr(ix.Instruction, f"create_{'rep_' if rep else ''}{op}{width}")(c.bits)]


def mmio(c: Ctx) -> list[Item]:
    em, kind = c.em, c.rng.randrange(4)
    size, r = c.sized_reg()
    if kind == 0:
        return [em.rm("MOV", size, r, c.mmio(size))]
    if kind == 1:
        return [em.mr("MOV", size, c.mmio(size), r)]
    if kind == 2:
        return [em.mi("MOV", size, c.mmio(size), c.imm(size))]
    return [em.mr(c.rng.choice(("ADD", "OR", "XOR", "AND")), size, c.mmio(size), r)]


def ss_load(c: Ctx) -> list[Item]:
    em = c.em
    if c.bits < 64 and c.rng.random() < 0.5:
        w = "W" if c.bits == 16 else "D"
        return [ix.Instruction.create_reg(em.code(f"PUSH{w}_SS"), R.SS),
                ix.Instruction.create_reg(em.code(f"POP{w}_SS"), R.SS), *alu(c)]
    r = c.reg()
    sreg_code = {16: "MOV_RM16_SREG", 32: "MOV_R32M16_SREG", 64: "MOV_R64M16_SREG"}[c.bits]
    load_code = {16: "MOV_SREG_RM16", 32: "MOV_SREG_R32M16", 64: "MOV_SREG_R64M16"}[c.bits]
    size = {16: 16, 32: 32, 64: 64}[c.bits]
    return [ix.Instruction.create_reg_reg(em.code(sreg_code), em.reg(r, size), R.SS),
            ix.Instruction.create_reg_reg(em.code(load_code), R.SS, em.reg(r, size)), *alu(c)]


def cpuid(c: Ctx) -> list[Item]:
    em = c.em
    return [em.mov_imm(AX, 32, c.rng.choice(CPUID_LEAVES)), em.rr("XOR", 32, CX, CX), em.plain("CPUID"),
            em.mov_imm(BX, 32, c.data)]  # CPUID writes EBX: put the data page back


def misc(c: Ctx) -> list[Item]:
    return [c.em.plain(c.rng.choice(("NOPD" if c.bits > 16 else "NOPW", "HLT", "RDTSC")))]


Family = Callable[[Ctx], list[Item]]
#: The pool: name -> generator. Every family runs in every mode (CMPXCHG16B and the
#: 64-bit forms only in long mode, POP SS only outside it).
FAMILIES: dict[str, Family] = {f.__name__: f for f in (alu, unary, shift, muldiv, bits, move, stack, flags, branch,
                                                        string, atomic, port, mmio, ss_load, cpuid, misc)}
