"""The result of a diff: where KVM's account of a program first differs from the reference."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Divergence kinds.
LOST_STEP = "lost_step"  # KVM did not report the step trap after an instruction
EXTRA_STEP = "extra_step"  # KVM reported a step trap the architecture does not take
PC = "pc"  # KVM went somewhere else
REGISTER = "register"  # same pc, a general register differs
FLAGS = "flags"  # same pc, only defined flags differ
MEMORY = "memory"  # the final guest memory differs
IO = "io"  # port / MMIO writes (or console output) differ
KVM_ERROR = "kvm_error"  # KVM stopped with an internal error (emulation failure)
KVM_FAULT = "kvm_fault"  # KVM shut down (triple fault) or failed entry where the reference ran on
FAULT = "fault"  # the reference raised an exception that KVM did not
REFERENCE_ERROR = "reference_error"  # the reference could not run an instruction KVM ran
END = "end"  # the runs end differently (exit code, one side stopped)
KINDS = (LOST_STEP, EXTRA_STEP, PC, REGISTER, FLAGS, MEMORY, IO, KVM_ERROR, KVM_FAULT, FAULT,
         REFERENCE_ERROR, END)

#: Divergences a report keeps (the count of all of them is kept too).
MAX_DIVERGENCES = 100


@dataclass(frozen=True)
class Divergence:
    """One place where KVM and the reference disagree."""

    kind: str
    step: int  # index of the architectural step (instruction) in the reference
    pc: int | None  # address of that instruction
    instruction: str  # decoded (Intel syntax)
    mnemonic: str
    expected: dict[str, Any]  # the reference's account
    observed: dict[str, Any]  # KVM's account
    registers: tuple[str, ...] = ()  # the registers that differ, if any
    note: str = ""

    @property
    def cause(self) -> tuple[str, str]:
        """What a fuzzing campaign groups divergences by: kind and mnemonic."""
        return self.kind, self.mnemonic

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["registers"] = list(self.registers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Divergence:
        return cls(**{**d, "registers": tuple(d.get("registers", ()))})

    def describe(self) -> str:
        where = f"step {self.step}" + (f" at {self.pc:#x}" if self.pc is not None else "")
        text = f"{self.kind} at {where}: {self.instruction}"
        if self.registers:
            text += " (" + ", ".join(
                f"{r}: expected {_hex(self.expected.get(r))}, observed {_hex(self.observed.get(r))}"
                for r in self.registers) + ")"
        if self.note:
            text += f" - {self.note}"
        return text


def _hex(v: Any) -> str:
    return f"{v:#x}" if isinstance(v, int) else str(v)


@dataclass
class DiffReport:
    """``agree`` is True when no divergence was found over ``steps`` compared steps."""

    mode: str
    steps: int
    kvm_rows: int
    divergences: list[Divergence] = field(default_factory=list)
    divergence_count: int = 0
    kvm_stop: str = ""
    kvm_stop_detail: dict[str, Any] = field(default_factory=dict)
    reference_stop: str = ""
    reference_detail: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    max_steps: int | None = None
    complete: bool = True  # False when the comparison ended early (step limit, undelivered exception)
    reference: str = "unicorn"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return self.divergence_count == 0

    @property
    def first_divergence(self) -> Divergence | None:
        return min(self.divergences, key=lambda d: d.step) if self.divergences else None

    def add(self, d: Divergence) -> None:
        self.divergence_count += 1
        if len(self.divergences) < MAX_DIVERGENCES:
            self.divergences.append(d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["divergences"] = [x.to_dict() for x in self.divergences]
        d["agree"] = self.agree
        first = self.first_divergence
        d["first_divergence"] = first.to_dict() if first else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffReport:
        d = {k: v for k, v in d.items() if k not in ("agree", "first_divergence")}
        d["divergences"] = [Divergence.from_dict(x) for x in d.get("divergences", [])]
        return cls(**d)

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), default=_jsonable, **kw)

    def summary(self) -> str:
        head = (f"{'agree' if self.agree else 'DIVERGE'}: {self.steps} steps compared in {self.mode} mode "
                f"(KVM: {self.kvm_rows} steps, stop {self.kvm_stop}; reference: {self.reference_stop})")
        if self.agree:
            return head
        lines = [head, f"{self.divergence_count} divergence(s); first: {self.first_divergence.describe()}"]  # type: ignore[union-attr]
        lines += [f"  {d.describe()}" for d in self.divergences[1:10]]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"cannot serialise {type(v).__name__}")
