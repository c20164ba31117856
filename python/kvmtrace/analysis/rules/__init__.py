"""The rules, one module each, in report order.  :data:`RULES` maps each stable
rule id to its one-line description."""

from __future__ import annotations

from kvmtrace.analysis.rules import (
    dr6_cause,
    dr6_fixed_bits,
    dr6_no_accumulation,
    dr7_echo,
    exception_vector,
    pc_semantics,
    step_completeness,
)
from kvmtrace.analysis.rules.base import Rule

ALL: tuple[Rule, ...] = (
    dr6_fixed_bits.RULE,
    dr6_cause.RULE,
    dr6_no_accumulation.RULE,
    exception_vector.RULE,
    pc_semantics.RULE,
    step_completeness.RULE,
    dr7_echo.RULE,
)
BY_ID: dict[str, Rule] = {r.id: r for r in ALL}
RULES: dict[str, str] = {r.id: r.description for r in ALL}

__all__ = ["ALL", "BY_ID", "RULES", "Rule"]
