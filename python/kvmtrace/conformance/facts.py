"""The hardware and KVM facts the conformance suite uses, all from :mod:`kvmtrace._core`.

The Rust core defines every x86 debug constant once (rust/arch, rust/debug); the
names here are aliases kept for the suite's public API (e.g.
``kvmtrace.conformance.DR6_CLEAN``), never a second definition.
"""

from __future__ import annotations

from kvmtrace._core import (
    GUESTDBG_FLAGS,
    MODE_BITS,
    MODES,
    RFLAGS_IF,
    RFLAGS_IOPL,
    RFLAGS_RF,
    VECTOR_BP,
    VECTOR_DB,
    VECTOR_UD,
    Dr6,
    Dr7,
)

#: DR6 with no debug condition (0xffff0ff0: SDM Vol.3B §18.2.3, APM Vol.2 §13.1.1.3).
DR6_CLEAN = Dr6.CLEAN
DR6_B = tuple(Dr6.b(slot) for slot in range(4))
DR6_BD = Dr6.BD
DR6_BS = Dr6.BS
DR6_BT = Dr6.BT
#: DR7 bit 10 reads as 1 (SDM §18.2.4, APM §13.1.1.4).
DR7_FIXED_1 = Dr7.FIXED_1
DR7_GD = Dr7.GD
#: DR7 R/W and LEN field encodings: {"exec": 0, "write": 1, "io": 2, "rw": 3}, {1: 0, 2: 1, 8: 2, 4: 3}.
RW_BITS = Dr7.RW_BITS
LEN_BITS = Dr7.LEN_BITS

DB_VECTOR = VECTOR_DB
BP_VECTOR = VECTOR_BP

#: #UD, vector 6 (SDM Vol.3A Table 6-1).
UD_VECTOR = VECTOR_UD
# RFLAGS_RF (bit 16, SDM Vol.1 §3.4.3.3), RFLAGS_IF (bit 9) and RFLAGS_IOPL (bits
# 12-13) come from _core as imported above.

__all__ = [
    "BP_VECTOR", "DB_VECTOR", "DR6_B", "DR6_BD", "DR6_BS", "DR6_BT", "DR6_CLEAN", "DR7_FIXED_1", "DR7_GD",
    "GUESTDBG_FLAGS", "LEN_BITS", "MODES", "MODE_BITS", "RFLAGS_IF", "RFLAGS_IOPL", "RFLAGS_RF", "RW_BITS",
    "UD_VECTOR", "Dr6", "Dr7",
]
