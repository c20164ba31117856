"""Findings: the distinct deviations behind a suite's failures.

A finding groups every difference of every run that has the same aspect, the same
kind of expected event and the same pattern of what was observed instead: "data
breakpoints never fire" is one finding however many runs, slots and lengths show it.
A KVM internal error is grouped by the instruction it happened on, whatever the
scenario expected there; the reported dr7 by its value alone (it is informational).
Differences in checks whose vCPU had already stopped (``not_reached``) are left out:
the earlier difference that stopped it explains them. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmtrace.conformance.facts import MODES, Dr6
from kvmtrace.conformance.kinds import kind as kind_of
from kvmtrace.conformance.model import ASPECTS, INFORMATIONAL, Check, Mismatch, dr6_names, fmt
from kvmtrace.conformance.result import Result

#: Observed instead of an expected debug exit, these mean the exit never came and the
#: guest ran on (to its sync point, its exit, or the end of the stretch).
RAN_ON = frozenset({"missing", "hlt", "sync", "exit"})
DR7_CITE = ("KVM api.rst KVM_EXIT_DEBUG (debug.arch: 'architecture specific debug information'); upstream "
            "x86.c kvm_vcpu_do_singlestep and kvm_vcpu_check_code_breakpoint and the VMX #BP path never write "
            "debug.arch.dr7")


@dataclass
class Finding:
    """One distinct deviation and the runs it explains."""

    id: str
    title: str
    aspect: str
    expected: str
    observed: str
    cite: str
    runs: list[tuple[str, str]] = field(default_factory=list)
    checks: int = 0

    @property
    def informational(self) -> bool:
        return self.aspect in INFORMATIONAL

    @property
    def modes(self) -> list[str]:
        """The modes of the runs it explains, in MODES order."""
        seen = {m for _, m in self.runs}
        return [m for m in MODES if m in seen]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "aspect": self.aspect, "informational": self.informational,
                "scenarios": [{"scenario": s, "mode": m} for s, m in self.runs], "runs": len(self.runs),
                "modes": self.modes,
                "checks": self.checks, "expected": self.expected, "observed": self.observed, "cite": self.cite}


def _bits(v: int) -> str:
    """Names of DR6 cause bits in ``v`` (RTM counted as set: only the named bits matter here)."""
    return Dr6.names(v | Dr6.RTM)


def pattern_of(check: Check, mismatches: list[Mismatch]) -> str:
    """What was observed instead, as a pattern shared by every run that shows the same deviation.

    ``mismatches``: the differences of one check in one aspect (several only for guest_state:
    the guest values that differ, together one pattern).
    """
    e, o = check.expected, check.observed
    m = mismatches[0]
    if m.aspect == "events":
        if e.reason == "none":
            return f"extra_{o.reason}"
        if o.reason in RAN_ON and e.reason == "debug":
            return "missing"
        if o.reason == "guest_exception":
            return f"guest_exception:{(o.note or '').split('took ')[-1].split(' ')[0] or o.exception}"
        if o.reason == "timeout":
            return "timeout"
        return f"{o.reason}_instead_of_{e.reason}"
    if m.aspect == "exception":
        return f"exception_{o.exception}"
    if m.aspect == "dr6" and isinstance(m.expected, int) and isinstance(m.observed, int):
        extra, lack = m.observed & ~m.expected & Dr6.CAUSE_MASK, m.expected & ~m.observed & Dr6.CAUSE_MASK
        return "dr6" + (f"+{_bits(extra)}" if extra else "") + (f"-{_bits(lack)}" if lack else "")
    if m.aspect == "guest_state":
        return "+".join(x.field for x in mismatches)
    return m.aspect


def _title(what: str, pattern: str) -> str:
    if pattern == "missing":
        return f"{what}: never reported"
    if pattern.startswith("extra_"):
        return f"{what}: an extra {pattern[6:]} exit"
    if pattern.startswith("guest_exception:"):
        return f"{what}: the guest takes {pattern.split(':', 1)[1]} instead"
    if pattern == "timeout":
        return f"{what}: no progress (timeout)"
    if pattern.startswith("dr6"):
        extra = pattern[3:].split("-")[0].lstrip("+")
        lack = pattern.split("-")[1] if "-" in pattern else ""
        return f"{what}: DR6 " + " and ".join(
            ([f"also has {extra}"] if extra else []) + ([f"lacks {lack}"] if lack else []))
    if pattern.startswith("guest."):
        values = [p.removeprefix("guest.") for p in pattern.split("+")]
        return f"{what}: the guest reads a wrong {' and '.join(values)}"
    if pattern == "code":
        return f"{what}: the guest ends with another exit code"
    return f"{what}: wrong {pattern}"


def classify(check: Check, mismatches: list[Mismatch], cite: str) -> tuple[str, str, str, str, str] | None:
    """(id, title, cite, expected, observed) of the finding the differences of one check in one aspect
    belong to, or None (the check's vCPU had stopped before it)."""
    e, o = check.expected, check.observed
    m = mismatches[0]
    if o.reason == "not_reached":
        return None
    if m.aspect == "dr7_report":
        zero = o.dr7 == 0
        title = ("kvm_run->debug.arch.dr7 is reported as 0" if zero
                 else "kvm_run->debug.arch.dr7 is neither the DR7 in force nor 0 (stale bytes)")
        return ("dr7_report." + ("zero" if zero else "differs"), title, DR7_CITE,
                "dr7 = the DR7 in force (0x400, or debugreg[7] with USE_HW_BP)", f"dr7={fmt('dr7', o.dr7)}")
    if m.aspect == "events" and o.reason == "internal_error":
        insn = o.insn or "an undecodable instruction"
        mnemonic = insn.split()[0] if o.insn else "unknown"
        form = "INT n" if mnemonic == "int" else mnemonic.upper()
        return (f"internal_error.{mnemonic}", f"{form} is a KVM internal error (emulation failure)", cite,
                f"{insn} executes as the SDM/APM define it (first: {e.brief()})",
                f"internal_error at {fmt('pc', o.pc)}: {insn} ({o.note})")
    pattern = pattern_of(check, mismatches)
    name = e.kind
    k = kind_of(name)
    if k is not None and k.missing_as and pattern == "missing":
        name, k = k.missing_as, kind_of(k.missing_as)
    what = k.what if k else "an expected exit"
    title = (k.titles.get(pattern) if k else None) or _title(what, pattern)
    ident = f"{name or 'other'}.{m.aspect}.{pattern}".replace(" ", "_")
    if m.aspect == "events":
        exp_text, obs_text = e.brief(), o.brief() + (f" ({o.note})" if o.note and o.note not in o.brief() else "")
    else:
        exp_text, obs_text = (" ".join(_value(x.field, getattr(x, side)) for x in mismatches)
                              for side in ("expected", "observed"))
    return ident, title, k.cite if k else cite, exp_text, obs_text


def _value(name: str, v: Any) -> str:
    text = f"{name}={fmt(name, v)}"
    return text + (f" ({dr6_names(v)})" if name.endswith("dr6") and isinstance(v, int) else "")


def find_findings(results: list[Result]) -> list[Finding]:
    """The findings of a suite's results: architectural ones first (most runs first), then informational."""
    by_id: dict[str, Finding] = {}
    for r in results:
        for c in r.checks:
            by_aspect: dict[str, list[Mismatch]] = {}
            for m in (*c.mismatches, *c.info):
                by_aspect.setdefault(m.aspect, []).append(m)
            for aspect, ms in by_aspect.items():
                got = classify(c, ms, r.cite)
                if got is None:
                    continue
                ident, title, cite, exp_text, obs_text = got
                f = by_id.setdefault(ident, Finding(ident, title, aspect, exp_text, obs_text, cite))
                f.checks += 1
                if (r.scenario, r.mode) not in f.runs:
                    f.runs.append((r.scenario, r.mode))
    return sorted(by_id.values(), key=lambda f: (f.informational, -len(f.runs), ASPECTS.index(f.aspect), f.id))


def explaining(findings: list[Finding], scenario: str, mode: str, *, informational: bool = True) -> list[int]:
    """1-based numbers of the findings that explain one run (without the informational ones if asked)."""
    return [i for i, f in enumerate(findings, 1)
            if (scenario, mode) in f.runs and (informational or not f.informational)]
