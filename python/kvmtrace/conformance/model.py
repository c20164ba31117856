"""Expectations, observations, their comparison and the aspects each check judges.

Pure Python with no KVM access, so the comparison rules are unit-tested on
synthetic observations. A check judges up to six aspects of one exit:

* ``events``: the exit happens, in order, with the right exit reason (port, address);
* ``exception``: the vector KVM reports;
* ``pc``: where it is reported (fault: at the instruction; trap: after it);
* ``dr6``: the debug status KVM reports for the exit;
* ``guest_state``: what the guest itself observes, read back from its memory
  (its DR6, a handler's vector and return address, counters, its exit code);
* ``dr7_report``: ``kvm_run->debug.arch.dr7``. Informational: the KVM API documents it
  only as "architecture specific debug information" and upstream KVM's single-step and
  code-breakpoint paths (x86.c kvm_vcpu_do_singlestep, kvm_vcpu_check_code_breakpoint)
  and the VMX #BP path never write it, so it is shown and counted, and never fails a run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from kvmtrace.conformance.facts import Dr6

#: Exit reasons an observation can have: the KVM exit reasons of ``Machine.run_once``
#: plus the runner's own: ``exit`` (the guest wrote port 0xF4), ``guest_exception``
#: (an exception reached the guest's catch-all stub), ``sync`` (the guest wrote its
#: sync port), ``timeout``, ``not_reached`` (an earlier exit ended the vCPU's run) and
#: ``missing`` (an expected exit that did not come).
REASONS = (
    "debug", "io_out", "io_in", "mmio_read", "mmio_write", "hlt", "shutdown", "internal_error",
    "fail_entry", "interrupted", "other", "exit", "guest_exception", "sync", "timeout", "not_reached", "missing",
)

#: Fields compared by :func:`compare`, in report order.
FIELDS = ("reason", "exception", "pc", "dr6", "dr7", "port", "addr", "code")
#: Fields shown in hex.
HEX_FIELDS = frozenset({"pc", "dr6", "dr7", "addr", "port"})
#: Guest-observed values whose name contains one of these are numbers, shown in decimal.
DECIMAL_GUEST_VALUES = ("vector", "count", "cpl", "iteration", "delivered")

#: The aspects a check judges, in report order; the last is informational.
ASPECTS = ("events", "exception", "pc", "dr6", "guest_state", "dr7_report")
INFORMATIONAL = frozenset({"dr7_report"})
ARCHITECTURAL = tuple(a for a in ASPECTS if a not in INFORMATIONAL)
FIELD_ASPECT = {"reason": "events", "port": "events", "addr": "events", "exception": "exception", "pc": "pc",
                "dr6": "dr6", "dr7": "dr7_report", "code": "guest_state"}


def aspect_of(field_name: str) -> str:
    """The aspect a compared field belongs to (``guest.*`` values are the guest's state)."""
    return "guest_state" if field_name.startswith("guest.") else FIELD_ASPECT[field_name]


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
    if isinstance(v, tuple) and len(v) == 2:  # a pc range
        return f"{v[0]:#x}..{v[1]:#x}"
    hexed = name in HEX_FIELDS or (name.startswith("guest.") and not _decimal(name))
    if isinstance(v, int) and not isinstance(v, bool) and hexed:
        return f"{v:#x}"
    return str(v)


def _json_value(name: str, v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and name in HEX_FIELDS:
        return f"{v:#x}"
    return v


def _decimal(name: str) -> bool:
    return any(marker in name for marker in DECIMAL_GUEST_VALUES)


def _guest_json(values: dict[str, int]) -> dict[str, Any] | None:
    """Guest-observed values for JSON: vectors and counts as numbers, the rest (DR6, addresses) in hex."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        out[k] = v if _decimal(k) or not isinstance(v, int) else f"{v:#x}"
    return out or None


@dataclass(frozen=True)
class _ExitRecord:
    """The fields of one exit that a scenario compares (shared by Expect and Observation)."""

    reason: str
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
    ``pc_in`` (lo, hi) accepts any pc with lo <= pc < hi (e.g. "inside the handler").
    ``kind`` names the class of event expected (see :mod:`kvmtrace.conformance.kinds`):
    not compared, it groups the differences of many runs into findings.
    """

    reason: str = "debug"  # most expectations are a debug exit
    pc_in: tuple[int, int] | None = None
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.pc_in is not None:
            d["pc_range"] = [f"{self.pc_in[0]:#x}", f"{self.pc_in[1]:#x}"]
        d["kind"] = self.kind
        return d


@dataclass(frozen=True)
class Observation(_ExitRecord):
    """What the host actually did at one step of a scenario (``reason`` is required).

    ``insn``: the instruction at pc, decoded, where it matters (a KVM internal error).
    """

    insn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.insn is not None:
            d["insn"] = self.insn
        return d


def _brief(e: _ExitRecord) -> str:
    """``debug exc=1 pc=0x8004 (gd_read) dr6=0xffff2ff0 (BD) dr7=0x2400``: the specified fields."""
    parts = ["no exit here" if e.reason == "none" else e.reason]
    if e.exception is not None:
        parts.append(f"exc={e.exception}")
    if isinstance(e, Expect) and e.pc_in is not None:
        parts.append(f"pc in {e.pc_in[0]:#x}..{e.pc_in[1]:#x}" + (f" ({e.note})" if e.note else ""))
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

    @property
    def aspect(self) -> str:
        return aspect_of(self.field)

    @property
    def informational(self) -> bool:
        return self.aspect in INFORMATIONAL

    def __str__(self) -> str:
        e, o = fmt(self.field, self.expected), fmt(self.field, self.observed)
        if self.field.endswith("dr6") and isinstance(self.expected, int) and isinstance(self.observed, int):
            return f"{self.field}: expected {e} ({dr6_names(self.expected)}), observed {o} ({dr6_names(self.observed)})"
        return f"{self.field}: expected {e}, observed {o}"


def compare(expected: Expect, observed: Observation) -> list[Mismatch]:
    """Every specified field of ``expected`` that ``observed`` does not match.

    When the exit reason differs, the other fields are not compared (they would
    only repeat that the exit is of another kind). The list includes informational
    differences (dr7); :func:`make_check` sets those apart.
    """
    if observed.reason != expected.reason:
        return [Mismatch("reason", expected.reason, observed.reason)]
    out = []
    for name in FIELDS[1:]:
        want = getattr(expected, name)
        if want is not None and getattr(observed, name) != want:
            out.append(Mismatch(name, want, getattr(observed, name)))
    if expected.pc_in is not None and expected.pc is None:
        lo, hi = expected.pc_in
        if observed.pc is None or not lo <= observed.pc < hi:
            out.append(Mismatch("pc", expected.pc_in, observed.pc))
    for name, want in expected.guest.items():
        got = observed.guest.get(name)
        if got != want:
            out.append(Mismatch(f"guest.{name}", want, got))
    return out


def judged_aspects(expected: Expect, observed: Observation) -> list[str]:
    """The aspects a comparison of ``observed`` with ``expected`` judges.

    A different exit reason judges only ``events``: the other fields of an exit of
    another kind say nothing about the one expected.
    """
    if observed.reason != expected.reason:
        return ["events"]
    specified = {
        "events": True,
        "exception": expected.exception is not None,
        "pc": expected.pc is not None or expected.pc_in is not None,
        "dr6": expected.dr6 is not None,
        "guest_state": bool(expected.guest) or expected.code is not None,
        "dr7_report": expected.dr7 is not None,
    }
    return [a for a in ASPECTS if specified[a]]


@dataclass(frozen=True)
class Check:
    """One compared step: a label, the expectation, the observation and their differences.

    ``mismatches`` are the architectural differences (any one fails the check);
    ``info`` the informational ones (the reported dr7), which never do.
    """

    label: str
    expected: Expect
    observed: Observation
    mismatches: tuple[Mismatch, ...]
    info: tuple[Mismatch, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def aspects(self) -> dict[str, str]:
        """Each judged aspect: ``pass``, ``fail``, or for dr7_report ``info`` when it differs."""
        failed = {m.aspect for m in self.mismatches}
        noted = {m.aspect for m in self.info}
        return {a: "fail" if a in failed else "info" if a in noted else "pass"
                for a in judged_aspects(self.expected, self.observed)}

    @property
    def dr6_checked(self) -> bool:
        """A delivered debug exit whose DR6 this check compared."""
        return self.expected.dr6 is not None and self.expected.reason == self.observed.reason == "debug"

    @property
    def dr6_correct(self) -> bool:
        return self.dr6_checked and not any(m.field == "dr6" for m in self.mismatches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ok": self.ok,
            "aspects": {a: self.aspects().get(a, "n/a") for a in ASPECTS},
            "expected": self.expected.to_dict(),
            "observed": self.observed.to_dict(),
            "mismatches": [str(m) for m in self.mismatches],
            "info": [str(m) for m in self.info],
        }


def make_check(label: str, expected: Expect, observed: Observation) -> Check:
    found = compare(expected, observed)
    return Check(label, expected, observed, tuple(m for m in found if not m.informational),
                 tuple(m for m in found if m.informational))
