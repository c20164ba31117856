"""``dr6_fixed_bits``: #DB events have ``dr6 & 0xffff1ff0 == 0xffff0ff0`` (bits
4-11 and 16-31 read 1, bit 12 reads 0) and ``dr6 >> 32 == 0``.  When the
configured DR7 enables RTM debugging (bit 11), bit 16 may read 0.  Runs without
a debug configuration too."""

from __future__ import annotations

import numpy as np

from kvmtrace._core import Dr6
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.config import HIGH32, LOW32
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView


def _fixed_mask(view: TraceView) -> int:
    return view.cfg.fixed_mask if view.cfg is not None else Dr6.FIXED_MASK


def check(c: Chunk, acc: Collector) -> None:
    fm = _fixed_mask(c.view)
    # fixed bits and bits 63:32 (must be 0) in one comparison
    bad = (c.dr6_c & np.uint64(fm | HIGH32)) != np.uint64(Dr6.CLEAN & fm)
    acc.add(c.lo, [("fixed", c.only_db(bad), None)], c.n_db)


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    mask = _fixed_mask(view)
    v = int(view.dr6[i])
    exp = (v & LOW32 & ~mask) | (Dr6.CLEAN & mask)
    diff = v ^ exp
    parts = []
    if v >> 32:
        parts.append("bits 63:32 set")
    if diff & LOW32:
        parts.append(f"fixed bits differ ({diff & LOW32:#x})")
    return view.violation(i, "dr6", hex_or_dash(exp), hex_or_dash(v), ", ".join(parts))


RULE = Rule(
    "dr6_fixed_bits",
    f"DR6 reserved bits hold their fixed values ({Dr6.CLEAN:#x} pattern, bit 12 clear) and bits 63:32 are zero",
    check, describe, needs_config=False,
)
