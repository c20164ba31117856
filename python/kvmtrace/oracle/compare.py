"""Step-by-step comparison of a KVM run with the reference model.

KVM row i is the state after the i-th reported step trap; the reference produces the
architectural steps one at a time (it runs in lockstep, so it can be resynchronised).
At each step the pc and the general registers must agree, rflags masked by the flags
the instruction leaves undefined (whose KVM values are then copied into the reference,
so an undefined flag never propagates into a later difference). On a mismatch:

* the next KVM row matches this reference step: KVM reported an ``extra_step``;
* a later reference step (up to ``LOOKAHEAD``) matches this KVM row: KVM lost the step
  trap(s) in between (``lost_step``);
* otherwise the pc (``pc``), a register (``register``) or only defined flags
  (``flags``) differ, and the reference takes KVM's registers to go on.

Ends are compared too (KVM internal error, shutdown, debug-exit code, reference fault),
then the port/MMIO writes and console output, and, when every step agreed, memory.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

import kvmtrace._core as _core
import kvmtrace.oracle.report as K
from kvmtrace.oracle.devices import Devices
from kvmtrace.oracle.kvm_side import KvmRun
from kvmtrace.oracle.reference import RefStep
from kvmtrace.oracle.report import DiffReport, Divergence
from kvmtrace.oracle.state import DEBUG_FLAGS, RFLAGS, RIP, State, View

LOOKAHEAD = 16  # reference steps searched for the KVM row after lost traps (a run of MMIO stores)
MEMORY_SHOWN = 16  # differing bytes a memory divergence lists
WRITES_SHOWN = 8
S = _core.StopReason
# Divergences after which the two runs are not compared any further.
ENDING = frozenset({K.END, K.KVM_ERROR, K.KVM_FAULT, K.FAULT, K.REFERENCE_ERROR})


class Reference(Protocol):
    devices: Devices

    def step(self) -> RefStep: ...
    def write_state(self, state: State, force: bool = False) -> None: ...
    def snapshot(self) -> None: ...
    def restore(self) -> None: ...
    def commit(self) -> None: ...
    def read_memory(self) -> bytes: ...


def undefined_flags(st: RefStep) -> int:
    """Flags left undefined by the step's instructions (a later one may define them again)."""
    if len(st.instructions) == 1:
        return st.instructions[0].undefined_flags
    u = 0
    for d in st.instructions:
        u = (u & ~d.defined_flags) | d.undefined_flags
    return u


class Comparison:
    def __init__(self, kvm: KvmRun, ref: Reference, reference_name: str = "unicorn") -> None:
        self.kvm, self.ref, self.view = kvm, ref, View.of(kvm.mode)
        self.rows = kvm.rows
        self.i = 0  # next KVM row
        self.s = 0  # next reference step
        self.ref_s = 0.0
        self.write_steps: list[tuple[int, int, RefStep]] = []
        self.ended_early = False  # a divergence ended the comparison: later writes were never compared
        self.report = DiffReport(mode=kvm.mode, steps=0, kvm_rows=len(kvm.rows), kvm_stop=kvm.stop,
                                 kvm_stop_detail=dict(kvm.stop_detail), exit_code=kvm.exit_code,
                                 max_steps=kvm.max_steps, reference=reference_name)

    # Driver ------------------------------------------------------------------------
    def run(self) -> DiffReport:
        t0 = time.perf_counter()
        while True:
            st = self._step()
            if st.event is not None:
                self._reference_ended(st)
                break
            if self.i >= len(self.rows):
                if not self._kvm_ended(st):
                    break
                continue
            row = self.rows[self.i]
            self._environment(st, row)
            if self._matches(st, row):
                self._accept(st, row)
            else:
                self._mismatch(st, row)
        self.report.steps = self.s
        self._compare_writes()
        if self.report.agree and self.report.complete and self.kvm.final_memory is not None:
            self._compare_memory()
        self.report.timings = {"kvm_s": self.kvm.elapsed_s, "reference_s": self.ref_s,
                               "compare_s": time.perf_counter() - t0 - self.ref_s}
        return self.report

    def _step(self) -> RefStep:
        t = time.perf_counter()
        st = self.ref.step()
        self.ref_s += time.perf_counter() - t
        if st.writes[1] > st.writes[0]:
            self.write_steps.append((st.writes[0], self.s, st))
        return st

    def _matches(self, st: RefStep, row: State) -> bool:
        return not self.view.differences(st.state, row, undefined_flags(st))  # type: ignore[arg-type]

    def _accept(self, st: RefStep, row: State) -> None:
        """The step agrees: take KVM's values of the undefined flags, move both sides on."""
        u = undefined_flags(st)
        state = st.state
        assert state is not None
        if (state[RFLAGS] ^ row[RFLAGS]) & u:
            new = list(state)
            new[RFLAGS] = (state[RFLAGS] & ~u) | (row[RFLAGS] & u)
            self.ref.write_state(tuple(new))
        self.i += 1
        self.s += 1

    def _environment(self, st: RefStep, row: State) -> None:
        """CPUID, RDTSC, ...: the machine answers; take KVM's outputs when both are at the same place."""
        if st.state is None or row[RIP] != st.state[RIP] or not any(d.environment for d in st.instructions):
            return
        new = list(st.state)
        for d in st.instructions:
            if d.environment:
                for idx in d.written:
                    new[idx] = row[idx]
                new[RFLAGS] = (new[RFLAGS] & ~d.defined_flags) | (row[RFLAGS] & d.defined_flags)
        if tuple(new) != st.state:
            st.state = tuple(new)
            self.ref.write_state(st.state)

    # Mismatch ----------------------------------------------------------------------
    def _mismatch(self, st: RefStep, row: State) -> None:
        assert st.state is not None
        if self.i + 1 < len(self.rows) and self._matches(st, self.rows[self.i + 1]):
            note = "KVM reported a step trap the architecture does not take"
            if st.first.loads_ss:
                note += " (MOV SS / POP SS inhibit the trap until the next instruction completes)"
            self._add(K.EXTRA_STEP, st, {"rip": st.state[RIP], "traps": 1},
                      {"rip": row[RIP], "traps": 2, "extra_trap_rip": row[RIP]}, note=note)
            self.i += 1
            self._accept(st, self.rows[self.i])
            return
        lost = self._look_ahead(row)
        if lost is not None:
            k, nxt = lost
            self._add(K.LOST_STEP, st, {"rip": st.state[RIP]}, {"rip": row[RIP], "lost_traps": k},
                      note=f"KVM reported no step trap after this instruction; its next one came {k} "
                           f"instruction(s) later")
            self.s += k
            self._accept(nxt, row)
            return
        self._differ(st, row)

    def _look_ahead(self, row: State) -> tuple[int, RefStep] | None:
        """Does a later reference step match ``row``? Then that many traps were lost."""
        self.ref.snapshot()
        for k in range(1, LOOKAHEAD + 1):
            nxt = self._step_quiet()
            if nxt.event is not None:
                break
            self._environment(nxt, row)
            if self._matches(nxt, row):
                self.ref.commit()
                return k, nxt
        self.ref.restore()
        return None

    def _step_quiet(self) -> RefStep:
        t = time.perf_counter()
        st = self.ref.step()
        self.ref_s += time.perf_counter() - t
        return st

    def _differ(self, st: RefStep, row: State) -> None:
        assert st.state is not None
        names = self.view.differences(st.state, row, undefined_flags(st))
        kind = K.PC if "rip" in names else K.FLAGS if names == ["rflags"] else K.REGISTER
        shown = names if "rip" in names else ["rip", *names]
        self._add(kind, st, self.view.show(st.state, shown), self.view.show(row, shown), registers=tuple(names),
                  note="the reference continues from KVM's registers")
        # ... but not from its debug flags: RF/TF are the host's single-step machinery, not the program's
        flags = (row[RFLAGS] & ~DEBUG_FLAGS) | (st.state[RFLAGS] & DEBUG_FLAGS)
        self.ref.write_state(row[:RFLAGS] + (flags,) + row[RFLAGS + 1:])
        self.i += 1
        self.s += 1

    # Ends --------------------------------------------------------------------------
    def _reference_ended(self, st: RefStep) -> None:
        """The reference's step ended the run: a debug-exit write, a fault or an error."""
        r, kvm, at_end = self.report, self.kvm, self.i >= len(self.rows)
        r.reference_stop, r.reference_detail = st.event or "", dict(st.detail)
        if st.event == "exit":
            code = st.detail["exit_code"]
            if not (at_end and kvm.stop == S.EXIT_PORT and kvm.exit_code == code):
                self._add(K.END, st, {"stop": "exit_port", "exit_code": code}, self._kvm_end())
            return
        if st.event == "fault":
            self._reference_fault(st, at_end)
            return
        if not at_end:
            self._add(K.REFERENCE_ERROR, st, {"error": st.detail.get("error")}, {"rip": self.rows[self.i][RIP]},
                      note="the reference could not run an instruction that KVM ran")
        elif kvm.stop not in (S.INTERNAL_ERROR, S.SHUTDOWN):
            self._add(K.REFERENCE_ERROR, st, {"error": st.detail.get("error")}, self._kvm_end())
        else:
            r.complete = False

    def _reference_fault(self, st: RefStep, at_end: bool) -> None:
        vector = st.detail.get("vector")
        expected = {"stop": "fault", "vector": vector}
        if at_end:
            if self.kvm.stop == S.INTERNAL_ERROR:
                self._add(K.KVM_ERROR, st, expected, self._kvm_end())
            elif self.kvm.stop != S.SHUTDOWN:  # no IDT entry: the architecture triple-faults
                self._add(K.END, st, expected, self._kvm_end())
            return
        row = self.rows[self.i]
        if row[RIP] == (st.first.addr + st.first.length) & self.view.masks[RIP]:
            self._add(K.FAULT, st, expected, {"rip": row[RIP]}, note="KVM executed an instruction that faults")
        else:  # KVM delivered the exception to the guest: the reference does not model delivery
            self.report.complete = False

    def _kvm_ended(self, st: RefStep) -> bool:
        """KVM reported no more steps but the reference made one. True: compare on."""
        kvm, r = self.kvm, self.report
        assert st.state is not None
        if kvm.stop == S.MAX_EVENTS:
            r.complete, r.reference_stop = False, "max_steps"
            return False
        if kvm.stop == S.INTERNAL_ERROR and kvm.final is not None and kvm.final[RIP] != st.first.addr \
                and self._matches(st, kvm.final):
            self._add(K.LOST_STEP, st, {"rip": st.state[RIP]}, {"rip": kvm.final[RIP], "lost_traps": 1},
                      note="KVM reported no step trap after this instruction before it stopped")
            self.s += 1
            return True
        if kvm.stop == S.INTERNAL_ERROR:
            self._add(K.KVM_ERROR, st, self._effect(st), self._kvm_end(), note="KVM could not emulate the instruction")
        elif kvm.stop in (S.SHUTDOWN, S.FAIL_ENTRY):
            self._add(K.KVM_FAULT, st, self._effect(st), self._kvm_end())
        elif kvm.stop == S.EXIT_PORT and (found := self._exit_ahead()) is not None:
            k, exit_step = found
            self._add(K.LOST_STEP, st, {"rip": st.state[RIP]}, {"stop": "exit_port", "lost_traps": k},
                      note=f"KVM reported none of the {k} step trap(s) from this instruction to the debug exit")
            self.s += k
            self._reference_ended(exit_step)
        else:
            self._add(K.END, st, self._effect(st), self._kvm_end(), note="KVM stopped, the reference ran on")
        return False

    def _effect(self, st: RefStep) -> dict[str, Any]:
        """What the reference's step changed (rip and the registers that differ from KVM's last state)."""
        assert st.state is not None
        before = self.kvm.final if self.kvm.final is not None else (self.rows[-1] if self.rows else self.kvm.initial)
        changed = [n for n in self.view.differences(st.state, before) if n != "rip"]
        return self.view.show(st.state, ["rip", *changed])

    def _exit_ahead(self) -> tuple[int, RefStep] | None:
        """Does the reference reach the debug-exit write KVM stopped on within LOOKAHEAD steps?"""
        self.ref.snapshot()
        for k in range(1, LOOKAHEAD + 1):
            nxt = self._step_quiet()
            if nxt.event is not None:
                if nxt.event == "exit":
                    self.ref.commit()
                    return k, nxt
                break
        self.ref.restore()
        return None

    def _kvm_end(self) -> dict[str, Any]:
        d: dict[str, Any] = {"stop": self.kvm.stop, **self.kvm.stop_detail}
        if self.kvm.final is not None:
            d["rip"] = self.kvm.final[RIP]
        return d

    # Writes and memory -------------------------------------------------------------
    def _compare_writes(self) -> None:
        mine, theirs = self.ref.devices.writes, self.kvm.writes
        whole = self.report.complete and not self.ended_early
        n = len(mine) if whole else min(len(mine), len(theirs))
        j = next((k for k in range(n) if k >= len(theirs) or mine[k] != theirs[k]), None)
        if j is None and whole and len(theirs) > len(mine):
            j = len(mine)
        if j is not None:
            st = self._writer(j)
            self._add(K.IO, st, {"writes": [list(w) for w in mine[j:j + WRITES_SHOWN]]},
                      {"writes": [list(w) for w in theirs[j:j + WRITES_SHOWN]]},
                      step=self._write_step(j), note="port/MMIO writes differ (shown from the first difference)")
        console = bytes(self.ref.devices.console)
        if whole and console != self.kvm.console:
            self._add(K.IO, None, {"console": console.decode(errors="replace")},
                      {"console": self.kvm.console.decode(errors="replace")}, step=self.s)

    def _writer(self, j: int) -> RefStep | None:
        best = None
        for start, _, st in self.write_steps:
            if start <= j:
                best = st
        return best

    def _write_step(self, j: int) -> int:
        best = self.s
        for start, s, _ in self.write_steps:
            if start <= j:
                best = s
        return best

    def _compare_memory(self) -> None:
        a = np.frombuffer(self.ref.read_memory(), dtype=np.uint8)
        b = np.frombuffer(self.kvm.final_memory or b"", dtype=np.uint8)
        if len(a) != len(b):
            return
        where = np.flatnonzero(a != b)
        if len(where):
            shown = where[:MEMORY_SHOWN].tolist()
            self._add(K.MEMORY, None, {f"{x:#x}": int(a[x]) for x in shown}, {f"{x:#x}": int(b[x]) for x in shown},
                      step=self.s, note=f"{len(where)} byte(s) of guest memory differ at the end")

    # ------------------------------------------------------------------------------
    def _add(self, kind: str, st: RefStep | None, expected: dict[str, Any], observed: dict[str, Any], *,
             registers: tuple[str, ...] = (), note: str = "", step: int | None = None) -> None:
        if kind in ENDING:
            self.ended_early = True
        if st is not None:
            pc, text, mnemonic = st.first.addr, st.first.text, st.first.mnemonic
        else:
            pc, text, mnemonic = None, "(end of run)", "-"
        self.report.add(Divergence(kind, self.s if step is None else step, pc, text, mnemonic, expected, observed,
                                   registers, note))


def compare(kvm: KvmRun, ref: Reference, reference_name: str = "unicorn") -> DiffReport:
    """Compare a KVM run with a reference started from the same state."""
    return Comparison(kvm, ref, reference_name).run()
