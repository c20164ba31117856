"""Register state as the oracle compares it: the registers a mode shows, and the flags
each instruction defines (from iced-x86's instruction info, never a hand table).

A state is a tuple of the general registers in ``_core.GP_REGISTERS`` order (rax..r15,
rip, rflags), the order KVM's sync regs and the reference both report them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import iced_x86 as ix

import kvmtrace._core as _core

if TYPE_CHECKING:
    # A plain int at run time; iced's stubs type register values as this IntEnum class.
    from iced_x86._iced_x86_py import Register as IcedRegister

REGISTERS: tuple[str, ...] = tuple(_core.GP_REGISTERS)
State = tuple[int, ...]
RIP = REGISTERS.index("rip")
RCX = REGISTERS.index("rcx")
RFLAGS = REGISTERS.index("rflags")

# EFLAGS bit positions of the flags iced-x86 reports in its own RflagsBits set, plus
# the two the debug machinery itself uses (TF: the host's single-step; RF: resume
# flag KVM sets after a trap inside a REP string instruction). kvmtrace._core has no
# EFLAGS facts (it knows DR6/DR7), so this is the one place they are spelled.
EFLAGS_BIT = {"CF": 0, "PF": 2, "AF": 4, "ZF": 6, "SF": 7, "TF": 8, "IF": 9, "DF": 10, "OF": 11,
              "RF": 16, "AC": 18}
_ICED_TO_EFLAGS = {getattr(ix.RflagsBits, name): 1 << bit for name, bit in EFLAGS_BIT.items()
                   if hasattr(ix.RflagsBits, name)}
#: Flags never compared: the host's single-step sets TF behind the guest's back and
#: KVM reports RF after a trap inside a string instruction; neither is the program's.
DEBUG_FLAGS = (1 << EFLAGS_BIT["TF"]) | (1 << EFLAGS_BIT["RF"])


def eflags_mask(iced_bits: int) -> int:
    """EFLAGS bits of an iced-x86 ``RflagsBits`` set."""
    out = 0
    for bit, mask in _ICED_TO_EFLAGS.items():
        if iced_bits & bit:
            out |= mask
    return out


def flag_names(mask: int) -> str:
    names = [n for n, b in EFLAGS_BIT.items() if mask >> b & 1]
    return "|".join(names) if names else "none"


@dataclass(frozen=True)
class Decoded:
    """One decoded instruction and what the oracle needs to know about it."""

    addr: int
    length: int
    text: str
    mnemonic: str
    undefined_flags: int  # EFLAGS bits the instruction leaves undefined
    defined_flags: int  # EFLAGS bits it sets to a defined value
    loads_ss: bool  # MOV SS / POP SS: the next instruction's step trap is inhibited
    environment: bool  # its outputs come from the machine (CPUID, RDTSC, ...), see ENVIRONMENT
    written: tuple[int, ...]  # indexes into REGISTERS of the registers it writes (environment only)
    rep_count_mask: int = 0  # a REP string instruction: the width of its count register (CX/ECX/RCX)


#: Instructions whose results are the machine's answer rather than a computation
#: (CPUID leaves are the host's supported set, counters and random numbers differ per
#: run): the oracle takes their outputs from KVM, as it does port and MMIO reads.
ENVIRONMENT = frozenset({ix.Mnemonic.CPUID, ix.Mnemonic.RDTSC, ix.Mnemonic.RDTSCP, ix.Mnemonic.RDRAND,
                         ix.Mnemonic.RDSEED, ix.Mnemonic.RDPID, ix.Mnemonic.RDMSR, ix.Mnemonic.RDPMC,
                         ix.Mnemonic.XGETBV})
_MNEMONIC_NAMES = {v: k.lower() for k, v in vars(ix.Mnemonic).items() if isinstance(v, int) and not k.startswith("_")}
_REGISTER_NAMES = {v: k.lower() for k, v in vars(ix.Register).items() if isinstance(v, int) and not k.startswith("_")}
_WRITES = (ix.OpAccess.WRITE, ix.OpAccess.COND_WRITE, ix.OpAccess.READ_WRITE, ix.OpAccess.READ_COND_WRITE)
_FORMATTER = ix.Formatter(ix.FormatterSyntax.INTEL)
_INFO = ix.InstructionInfoFactory()


def mnemonic_name(mnemonic: int) -> str:
    return _MNEMONIC_NAMES.get(mnemonic, str(mnemonic))


def _full_index(reg: IcedRegister) -> int | None:
    if not ix.RegisterExt.is_gpr(reg):
        return None
    name = _REGISTER_NAMES.get(ix.RegisterExt.full_register(reg))
    return REGISTERS.index(name) if name in REGISTERS else None



@lru_cache(maxsize=65536)
def decode(code: bytes, addr: int, bits: int) -> Decoded:
    """Decode the instruction at the start of ``code`` (cached: loops decode once)."""
    ins = ix.Decoder(bits, code, ip=addr).decode()
    if ins.is_invalid:
        return Decoded(addr, max(ins.len, 1), f"(bad) {code[:1].hex()}", "invalid", 0, 0, False, False, ())
    undefined = eflags_mask(ins.rflags_undefined)
    defined = eflags_mask(ins.rflags_modified & ~ins.rflags_undefined)
    loads_ss = ins.op_count > 0 and ins.op0_register == ix.Register.SS and ins.mnemonic in (ix.Mnemonic.MOV, ix.Mnemonic.POP)
    env = ins.mnemonic in ENVIRONMENT
    written: tuple[int, ...] = ()
    if env:
        idx = {_full_index(u.register) for u in _INFO.info(ins).used_registers() if u.access in _WRITES}
        written = tuple(sorted(i for i in idx if i is not None))
    return Decoded(addr, ins.len, _FORMATTER.format(ins), mnemonic_name(ins.mnemonic), undefined, defined,
                   loads_ss, env, written, _rep_count_mask(ins))


def _rep_count_mask(ins: ix.Instruction) -> int:
    if not (ins.is_string_instruction and (ins.has_rep_prefix or ins.has_repe_prefix or ins.has_repne_prefix)):
        return 0
    for u in _INFO.info(ins).used_registers():
        if ix.RegisterExt.is_gpr(u.register) and ix.RegisterExt.full_register(u.register) == ix.Register.RCX:
            return (1 << (8 * ix.RegisterExt.size(u.register))) - 1
    return 0


@dataclass(frozen=True)
class View:
    """What a mode shows of the registers: a width mask per register (r8-r15 exist in long mode only)."""

    mode: str
    masks: tuple[int, ...]

    @classmethod
    def of(cls, mode: str) -> View:
        if mode == "long":
            return cls(mode, tuple((1 << 64) - 1 for _ in REGISTERS))
        # Legacy modes see 32-bit registers; the numbered registers do not exist there.
        return cls(mode, tuple(0 if n[1:].isdigit() else (1 << 32) - 1 for n in REGISTERS))

    def differences(self, expected: tuple[int, ...], observed: tuple[int, ...], undefined: int = 0) -> list[str]:
        """Names of the registers that differ (rflags masked by ``undefined`` and the debug flags)."""
        if expected == observed:
            return []
        out = []
        for i, (e, o, m) in enumerate(zip(expected, observed, self.masks)):
            if i == RFLAGS:
                m &= ~(undefined | DEBUG_FLAGS)
            if (e ^ o) & m:
                out.append(REGISTERS[i])
        return out

    def show(self, state: tuple[int, ...], names: list[str] | None = None) -> dict[str, int]:
        keep = names if names is not None else [n for n, m in zip(REGISTERS, self.masks) if m]
        return {n: state[REGISTERS.index(n)] & self.masks[REGISTERS.index(n)] for n in keep}
