"""Expectations, observations and the verdict logic of the conformance suite.

Pure Python with no KVM access, so the comparison rules are unit-tested on
synthetic observations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from kvmtrace.conformance.facts import Dr6

#: Exit reasons an observation can have: the KVM exit reasons of ``Machine.run_once``
#: plus the runner's own: ``exit`` (the guest wrote port 0xF4), ``guest_exception``
#: (an exception reached the guest's catch-all stub), ``sync`` (the guest reached
#: a HLT sync point while the runner waited for one), ``timeout`` and ``not_reached``
#: (an earlier exit ended the vCPU's run).
REASONS = (
    "debug", "io_out", "io_in", "mmio_read", "mmio_write", "hlt", "shutdown", "internal_error",
    "fail_entry", "interrupted", "other", "exit", "guest_exception", "sync", "timeout", "not_reached",
)

#: Fields compared by :func:`compare`, in report order.
FIELDS = ("reason", "exception", "pc", "dr6", "dr7", "port", "addr", "code")
#: Fields shown in hex.
HEX_FIELDS = frozenset({"pc", "dr6", "dr7", "addr", "port"})


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def dr6_names(v: int | None) -> str:
    """``B0|BS``-style names of DR6's cause bits (and ``RTM=0`` if bit 16 is clear)."""
    return "-" if v is None else Dr6.names(v)


def fmt(name: str, v: Any) -> str:
    if v is None:
        return "-"
    hexed = name in HEX_FIELDS or (name.startswith("guest.") and "vector" not in name)
    if isinstance(v, int) and not isinstance(v, bool) and hexed:
        return f"{v:#x}"
    return str(v)


def _json_value(name: str, v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and name in HEX_FIELDS:
        return f"{v:#x}"
    return v


def _guest_json(values: dict[str, int]) -> dict[str, Any] | None:
    """Guest-observed values for JSON: vectors as numbers, everything else (DR6, addresses) in hex."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        out[k] = v if "vector" in k or not isinstance(v, int) else f"{v:#x}"
    return out or None


@dataclass(frozen=True)
class _ExitRecord:
    """The fields of one exit that a scenario compares (shared by Expect and Observation)."""

    reason: str = "debug"
    exception: int | None = None
    pc: int | None = None
    dr6: int | None = None
    dr7: int | None = None
    port: int | None = None
    addr: int | None = None
    code: int | None = None
    guest: dict[str, int] = field(default_factory=dict)
    #: Free text, not compared: the guest symbol of pc, a KVM internal-error suberror, ...
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_value(k, getattr(self, k)) for k in FIELDS}
        d["guest"] = _guest_json(self.guest)
        d["note"] = self.note
        return d

    def brief(self) -> str:
        return _brief(self)


@dataclass(frozen=True)
class Expect(_ExitRecord):
    """What the architecture / KVM API says one step of a scenario must produce.

    ``None`` means "not specified": that field is not compared. ``guest`` holds
    values the guest itself observed (read back from its memory), by name.
    """


@dataclass(frozen=True)
class Observation(_ExitRecord):
    """What the host actually did at one step of a scenario (``reason`` is required)."""

    reason: str


def _brief(e: _ExitRecord) -> str:
    """``debug exc=1 pc=0x8004 (gd_read) dr6=0xffff2ff0 (BD) dr7=0x2400``: the specified fields."""
    parts = ["no exit here" if e.reason == "none" else e.reason]
    if e.exception is not None:
        parts.append(f"exc={e.exception}")
    if e.pc is not None:
        symbol = e.note if e.note and not e.note.startswith(("size", "suberror", "the ", "no ", "not ")) else None
        parts.append(f"pc={e.pc:#x}" + (f" ({symbol})" if symbol else ""))
    if e.dr6 is not None:
        parts.append(f"dr6={e.dr6:#x} ({dr6_names(e.dr6)})")
    for k in ("dr7", "port", "addr"):
        v = getattr(e, k)
        if v is not None:
            parts.append(f"{k}={v:#x}")
    if e.code is not None:
        parts.append(f"code={e.code:#x}")
    parts += [f"guest.{k}={fmt('guest.' + k, v)}" for k, v in e.guest.items()]
    return " ".join(parts)


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: Any
    observed: Any

    def __str__(self) -> str:
        e, o = fmt(self.field, self.expected), fmt(self.field, self.observed)
        if self.field.endswith("dr6") and isinstance(self.expected, int) and isinstance(self.observed, int):
            return f"{self.field}: expected {e} ({dr6_names(self.expected)}), observed {o} ({dr6_names(self.observed)})"
        return f"{self.field}: expected {e}, observed {o}"


def compare(expected: Expect, observed: Observation) -> list[Mismatch]:
    """Every specified field of ``expected`` that ``observed`` does not match.

    When the exit reason differs, the other fields are not compared (they would
    only repeat that the exit is of another kind).
    """
    if observed.reason != expected.reason:
        return [Mismatch("reason", expected.reason, observed.reason)]
    out = []
    for name in FIELDS[1:]:
        want = getattr(expected, name)
        if want is not None and getattr(observed, name) != want:
            out.append(Mismatch(name, want, getattr(observed, name)))
    for name, want in expected.guest.items():
        got = observed.guest.get(name)
        if got != want:
            out.append(Mismatch(f"guest.{name}", want, got))
    return out


@dataclass(frozen=True)
class Check:
    """One compared step: a label, the expectation, the observation and their differences."""

    label: str
    expected: Expect
    observed: Observation
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ok": self.ok,
            "expected": self.expected.to_dict(),
            "observed": self.observed.to_dict(),
            "mismatches": [str(m) for m in self.mismatches],
        }


def make_check(label: str, expected: Expect, observed: Observation) -> Check:
    return Check(label, expected, observed, tuple(compare(expected, observed)))


@dataclass
class Result:
    """The verdict of one scenario in one mode."""

    scenario: str
    mode: str
    verdict: Verdict
    checks: list[Check] = field(default_factory=list)
    #: Why: the unsupported capability, the error, or a summary of the first mismatch.
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    cite: str = ""

    @property
    def decisive(self) -> Check | None:
        """The check that decides the verdict: the first failing one, else the first one."""
        for c in self.checks:
            if not c.ok:
                return c
        return self.checks[0] if self.checks else None

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        d = self.decisive
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "verdict": self.verdict.value,
            "expected": d.expected.to_dict() if d is not None else None,
            "observed": d.observed.to_dict() if d is not None else None,
            "detail": {
                "reason": self.reason,
                "checks_passed": sum(c.ok for c in self.checks),
                "checks_total": len(self.checks),
                "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes),
                "elapsed_s": round(self.elapsed_s, 6),
                "cite": self.cite,
            },
        }


def verdict_of(checks: list[Check]) -> tuple[Verdict, str]:
    """``pass`` when every check matched, else ``fail`` with the first mismatch as the reason."""
    bad = [c for c in checks if not c.ok]
    if not checks:
        return Verdict.ERROR, "the scenario made no check"
    if not bad:
        return Verdict.PASS, f"{len(checks)} checks matched"
    first = bad[0]
    why = "; ".join(str(m) for m in first.mismatches)
    note = f" ({first.observed.note})" if first.observed.note else ""
    return Verdict.FAIL, f"{len(bad)} of {len(checks)} checks differ; first: {first.label}: {why}{note}"
