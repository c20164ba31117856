"""symbols.dr6_causes: the DR6 cause bits as the tables print them (``-`` for none)."""

from __future__ import annotations

import numpy as np
import pytest

from kvmtrace._core import Dr6
from kvmtrace.symbols import dr6_causes


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Dr6.CLEAN, "-"),  # the bits that read 1 and nothing else: no cause
        (Dr6.CLEAN | Dr6.BS, "BS"),  # a single-step trap
        (Dr6.CLEAN | Dr6.b(0) | Dr6.BS, "B0|BS"),
        (Dr6.CLEAN | Dr6.b(3), "B3"),
        (Dr6.CLEAN | Dr6.BD | Dr6.BT, "BD|BT"),
        (Dr6.CLEAN & ~Dr6.RTM, "RTM=0"),  # RTM is active low
        (Dr6.CLEAN | Dr6.CAUSE_MASK, "B0|B1|B2|B3|BD|BS|BT"),
    ],
)
def test_names_the_cause_bits(value: int, text: str) -> None:
    assert dr6_causes(value) == text
    assert dr6_causes(np.uint64(value)) == text  # trace columns hold numpy integers


def test_is_dr6_names_with_a_dash_for_none() -> None:
    cause_bits = [1 << i for i in range(32) if Dr6.CAUSE_MASK >> i & 1]
    for subset in range(1 << len(cause_bits)):
        causes = sum(b for i, b in enumerate(cause_bits) if subset >> i & 1)
        for v in (Dr6.CLEAN | causes, (Dr6.CLEAN | causes) & ~Dr6.RTM):
            names = Dr6.names(v)
            assert dr6_causes(v) == ("-" if names == "none" else names), hex(v)
