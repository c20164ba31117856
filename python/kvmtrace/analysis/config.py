"""The debug configuration as the rules see it: :class:`DebugConfig` (single-step,
general detect, injections, the four DR0-DR3 slots with kind, length and DR7
enable, software breakpoints, the expected DR7) built from a ``GuestDebug`` or
any object with its fields, and :func:`expected_dr7`.  Every DR6/DR7 encoding
comes from ``kvmtrace._core``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kvmtrace._core import MODE_BITS, Dr6, Dr7
from kvmtrace.exceptions import InvalidConfigError

U64 = (1 << 64) - 1
#: DR6 is a 32-bit register: the upper half of the 64-bit field reads 0.
LOW32 = (1 << 32) - 1
HIGH32 = U64 & ~LOW32
#: DR0-DR3.
SLOTS = 4

#: Mode spellings accepted for the decoding bitness, by canonical mode name.
_MODE_ALIASES = {
    "real": "real", "16": "real", "real16": "real", "vm86": "real",
    "protected": "protected", "prot": "protected", "pm": "protected", "32": "protected",
    "protected32": "protected", "compat": "protected",
    "long": "long", "64": "long", "long64": "long",
}

_KIND_ALIASES = {
    "exec": "exec", "execute": "exec", "x": "exec", "instruction": "exec", "insn": "exec",
    "write": "write", "w": "write",
    "rw": "rw", "readwrite": "rw", "read_write": "rw", "access": "rw", "read": "rw",
    "io": "io", "i/o": "io", "port": "io",
}


def bitness(mode: str | None) -> int | None:
    """Decoding bitness (16/32/64) of a mode name or alias; None if unknown."""
    if mode is None:
        return None
    name = _MODE_ALIASES.get(str(mode).lower())
    return None if name is None else MODE_BITS[name]


def mode_name(mode: Any) -> str | None:
    """Canonical name of a mode given as a name, an enum or a bitness."""
    if mode is None:
        return None
    by_bits = {bits: name for name, bits in MODE_BITS.items()}
    if isinstance(mode, (int, np.integer)):
        return by_bits.get(int(mode), str(mode))
    for cand in (mode, getattr(mode, "value", None), getattr(mode, "name", None)):
        if isinstance(cand, str):
            return cand.lower()
        if isinstance(cand, (int, np.integer)) and int(cand) in by_bits:
            return by_bits[int(cand)]
    return str(mode).lower()


def bits_name(bits: int) -> str:
    """``B0|BS``-style names of DR6 cause bits (``none`` if there are none)."""
    return Dr6.names((bits & Dr6.CAUSE_MASK) | Dr6.RTM)  # RTM set: no "RTM=0" for a bare cause mask


@dataclass(frozen=True)
class Slot:
    """One of DR0-DR3 as configured."""

    index: int
    addr: int
    kind: str
    length: int
    enabled: bool


def kind_name(k: Any) -> str:
    """Canonical breakpoint kind (exec, write, rw, io) of a name, alias or enum."""
    if k is None:
        return "exec"
    for cand in (k, getattr(k, "value", None), getattr(k, "name", None)):
        if isinstance(cand, str):
            key = cand.strip().lower().replace("-", "_")
            if key in _KIND_ALIASES:
                return _KIND_ALIASES[key]
    raise InvalidConfigError(f"invalid kind: unknown hardware breakpoint kind {k!r}; "
                             f"use one of {', '.join(Dr7.RW_BITS)}")


def _attr(obj: Any, name: str) -> Any:
    """``obj.name``, called if it is a method."""
    val = getattr(obj, name, None)
    return val() if callable(val) else val


def expected_dr7(debug: Any) -> int:
    """DR7 for ``debug``: its ``dr7`` attribute if present, else one derived
    from the breakpoints (Ln bits, R/W, LEN, GD) with bit 10 set."""
    dr7 = _attr(debug, "dr7")
    if dr7 is not None:
        return int(dr7) | Dr7.FIXED_1
    val = Dr7.FIXED_1
    for i, bp in enumerate(list(getattr(debug, "hw_breakpoints", None) or [])[:SLOTS]):
        if bp is None:
            continue
        length = int(getattr(bp, "length", 1) or 1)
        # a length DR7 cannot encode is shown as LEN 00, as the hardware would read it
        val |= Dr7.slot_bits(i, kind_name(getattr(bp, "kind", "exec")), length if length in Dr7.LEN_BITS else 1)
    if getattr(debug, "general_detect", False):
        val |= Dr7.GD
    return val


def sw_hit(sw: np.ndarray, pcs: np.ndarray) -> np.ndarray:
    """Which ``pcs`` are software-breakpoint addresses (``sw`` sorted, unique)."""
    if sw.size == 0:
        return np.zeros(pcs.shape[0], dtype=bool)
    if sw.size <= 8:  # a few comparisons beat np.isin's sort
        out = pcs == sw[0]
        for a in sw[1:]:
            out |= pcs == a
        return out
    return np.isin(pcs, sw)


class DebugConfig:
    """The guest-debug configuration a trace was recorded with."""

    def __init__(self, debug: Any):
        self.single_step = bool(getattr(debug, "single_step", False))
        self.general_detect = bool(getattr(debug, "general_detect", False))
        self.inject_db = bool(getattr(debug, "inject_db", False))
        self.inject_bp = bool(getattr(debug, "inject_bp", False))
        self.dr7_given = _attr(debug, "dr7") is not None
        self.dr7 = expected_dr7(debug)
        self.slots = self._slots(debug)
        self.exec_slots = [s for s in self.slots if s is not None and s.enabled and s.kind == "exec"]
        self.data_slots = [s for s in self.slots if s is not None and s.enabled and s.kind != "exec"]
        self.data_mask = sum(Dr6.b(s.index) for s in self.data_slots)
        sw = sorted({int(a) & U64 for a in (getattr(debug, "sw_breakpoints", None) or [])})
        self.sw = np.array(sw, dtype=np.uint64)
        # DR6 fixed bits: with DR7.RTM enabled a #DB inside a transaction clears bit 16.
        self.fixed_mask = Dr6.FIXED_MASK & ~(Dr6.RTM if self.dr7 & Dr7.RTM else 0)

    def _slots(self, debug: Any) -> list[Slot | None]:
        hw = list(getattr(debug, "hw_breakpoints", None) or [])
        if len(hw) > SLOTS:
            raise InvalidConfigError(f"invalid hw_breakpoints: at most {SLOTS} hardware breakpoints "
                                     f"(DR0-DR3), got {len(hw)}")
        decoded = Dr7.decode(self.dr7 & U64)
        slots: list[Slot | None] = [None] * SLOTS
        for i, bp in enumerate(hw):
            if bp is not None:
                enabled = decoded[i][0] if self.dr7_given else True
                slots[i] = Slot(i, int(getattr(bp, "addr")) & U64, kind_name(getattr(bp, "kind", "exec")),
                                int(getattr(bp, "length", 1) or 1), enabled)
        if not any(slots) and self.dr7_given:
            # Raw debug registers (GuestDebug(raw_debugreg=...)): slots from DR0-3 + DR7.
            raw = getattr(debug, "raw_debugreg", None)
            dr = list(raw)[:SLOTS] if raw is not None else list(getattr(debug, "debugreg", None) or [])[:SLOTS]
            for i, addr in enumerate(dr):
                enabled, kind, length = decoded[i]
                if enabled:
                    slots[i] = Slot(i, int(addr) & U64, kind, length, True)
        return slots

    def slot_desc(self, n: int) -> str:
        s = self.slots[n]
        if s is None:
            return f"DR{n} is not configured"
        if not s.enabled:
            return f"DR{n} ({s.kind} @ {s.addr:#x}) is disabled in DR7"
        return f"DR{n} is a {s.kind} breakpoint @ {s.addr:#x}"
