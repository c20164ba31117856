"""Running one scenario's guest: a KVM_RUN loop over ``Machine.run_once`` with a watchdog.

The conformance suite drives the vCPU with the raw ``run_once`` primitive, not
``Machine.trace``: it wants every exit exactly as KVM reports it, with no
step-over or re-injection logic of kvmtrace's engine in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import iced_x86

from kvmtrace._core import CONSOLE_PORT, EXIT_PORT, MODE_BITS, GuestDebug
from kvmtrace.conformance.align import align as _align
from kvmtrace.conformance.align import same_event
from kvmtrace.conformance.model import Check, Expect, Observation, make_check
from kvmtrace.conformance.watchdog import RunTimeout, Watchdog
from kvmtrace.exceptions import UnsupportedError
from kvmtrace.machine import Machine
from kvmtrace.program import Program

__all__ = ["GuestRun", "RunTimeout", "Watchdog"]

#: One expected exit of a sequence: a label, the expectation, and optionally a
#: function returning values the guest stored (attached to the matching exit).
Item = tuple[str, Expect] | tuple[str, Expect, Callable[[], dict[str, int]]]
#: Observations after which the vCPU cannot go on.
TERMINAL = frozenset({"exit", "guest_exception", "shutdown", "internal_error", "fail_entry", "other", "timeout",
                      "not_reached"})
#: Observations that end a stretch of the guest: the vCPU stopped, or reached a sync point.
STRETCH_END = TERMINAL | {"hlt", "sync"}
#: The guests' sync port: an OUT to it is a sync point where HLT cannot be one (with the
#: in-kernel irqchip HLT waits in the kernel; ring 3 may not execute HLT).
SYNC_PORT = 0xE6
#: Exit codes the guests write to port 0xF4.
EXIT_DONE = 0x00
EXIT_HANDLER = 0x41
EXIT_STUB = 0x80  # | vector: the catch-all stub of that vector ran
#: Where the catch-all exception stubs leave their record.
STUB_RECORD = 0x1F00
#: Vectors that push an error code in protected and long mode.
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
VECTOR_NAMES = {
    0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF", 10: "#TS",
    11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 18: "#MC", 19: "#XM", 20: "#VE",
    21: "#CP", 29: "#VC", 30: "#SX",
}
SLOT_BYTES = {"real": 2, "protected": 4, "long": 8}
DR_BYTES = {"real": 4, "protected": 4, "long": 8}


class GuestRun:
    """One scenario's vCPU: program guest debugging, run to the next event, check it."""

    def __init__(self, machine: Machine, program: Program, watchdog: Watchdog, *,
                 run_timeout: float = 2.0, deadline: float | None = None, vendor: str | None = None) -> None:
        self.m = machine
        self.prog = program
        self.mode = machine.mode
        self.watchdog = watchdog
        self.run_timeout = run_timeout
        self.deadline = deadline
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.console = bytearray()
        self.passed_exits: list[str] = []
        #: Why the vCPU cannot run any more (a shutdown, an exit port write, ...).
        self.stopped: str | None = None
        self.debug: GuestDebug | None = None
        #: The CPU vendor ("intel", "amd" or None) and, once a scenario chose by it, whose
        #: expectation was applied.
        self.vendor = vendor
        self.vendor_expectation: str | None = None
        #: The last observation run() returned (where the vCPU stands).
        self.last: Observation | None = None

    # Guest facts -------------------------------------------------------------
    def sym(self, name: str) -> int:
        return self.prog.symbol(name)

    def has(self, name: str) -> bool:
        return name in self.prog.symbols

    def where(self, pc: int | None) -> str | None:
        return None if pc is None else self.prog.symbolize(pc)

    def read_uint(self, addr: int, size: int) -> int:
        return int.from_bytes(self.m.read(addr, size), "little")

    def read_dr6(self, addr: int) -> int:
        """A DR6 value the guest stored (4 bytes, 8 in long mode)."""
        return self.read_uint(addr, DR_BYTES[self.mode])

    def read_slot(self, addr: int) -> int:
        """A stack slot the guest stored (2, 4 or 8 bytes by mode)."""
        return self.read_uint(addr, SLOT_BYTES[self.mode])

    # Control -----------------------------------------------------------------
    def set_debug(self, debug: GuestDebug | None) -> None:
        """KVM_SET_GUEST_DEBUG (UnsupportedError propagates: the verdict is then `unsupported`)."""
        self.m.vcpu(0).set_guest_debug(debug)
        self.debug = debug

    def set_pc(self, addr: int) -> None:
        """Move the vCPU to ``addr`` (as a debugger skips a faulting instruction)."""
        self.m.regs["rip"] = addr - self.m.regs["cs_base"]

    def set_reg(self, name: str, value: int) -> None:
        """KVM_SET_REGS / KVM_SET_SREGS of one register of vCPU 0."""
        self.m.regs[name] = value

    def note(self, text: str) -> None:
        self.notes.append(text)

    def by_vendor(self, *, intel: Any, amd: Any, why: str) -> Any:
        """The expectation of this host's CPU vendor, where Intel and AMD differ (noted in the result)."""
        if self.vendor not in ("intel", "amd"):
            raise UnsupportedError(f"the expectation depends on the CPU vendor ({why}) and this host's "
                                   "vendor_id is neither GenuineIntel nor AuthenticAMD")
        self.vendor_expectation = self.vendor
        self.note(f"{'Intel' if self.vendor == 'intel' else 'AMD'} expectation applied: {why}")
        return intel if self.vendor == "intel" else amd

    def run(self, **kw: Any) -> Observation:
        """KVM_RUN until the next event of interest and describe it (see :meth:`_run`)."""
        self.last = self._run(**kw)
        return self.last

    def _run(self, *, stop_on_io: bool = False, skip: Iterable[str] = (), max_exits: int = 10_000) -> Observation:
        """KVM_RUN until the next event of interest and describe it.

        Port 0xE9 output is collected; a write to port 0xF4 ends the guest
        (``exit``, or ``guest_exception`` when a catch-all stub wrote it). Other
        port and MMIO exits are passed over (and remembered) unless ``stop_on_io``;
        exits whose reason is in ``skip`` are passed over too.
        """
        if self.stopped is not None:
            return Observation("not_reached", note=f"the vCPU stopped earlier: {self.stopped}")
        skip = set(skip)
        for _ in range(max_exits):
            now = time.monotonic()
            limit = now + self.run_timeout
            if self.deadline is not None:
                limit = min(limit, self.deadline)
            try:
                try:
                    self.watchdog.arm(limit)
                    e = self.m.run_once()
                finally:
                    self.watchdog.disarm()
            except RunTimeout:
                rip = self._linear_rip()
                return self._stop(Observation("timeout", pc=rip,
                                              note=f"no exit within {self.run_timeout:g} s; rip at {self.where(rip)}"))
            r = e.reason
            if r == "interrupted":
                continue
            if r == "io_out" and e.port == CONSOLE_PORT:
                self.console += e.data or b""
                continue
            if r == "io_out" and e.port == EXIT_PORT:
                return self._stop(self._exit_port(e.data or b"\0"))
            if r == "io_out" and e.port == SYNC_PORT:
                rip = self._linear_rip()
                return Observation("sync", pc=rip, note=self.where(rip))
            if r in skip:
                self.passed_exits.append(r)
                continue
            if r == "debug":
                vector = self._stub_vector(e.pc)
                if vector is not None:  # the host is stepping the guest's catch-all stub
                    return self._stop(self._guest_exception(vector, self._stack_slots(), code=None))
                return Observation("debug", exception=e.exception, pc=e.pc, dr6=e.dr6, dr7=e.dr7,
                                   note=self.where(e.pc))
            if r in ("io_out", "io_in"):
                if stop_on_io:
                    return Observation(r, port=e.port, note=f"size {e.size}")
                self.passed_exits.append(f"{r}:{e.port:#x}")
                continue
            if r in ("mmio_read", "mmio_write"):
                if stop_on_io:
                    return Observation(r, addr=e.addr, note=f"size {e.size}")
                self.passed_exits.append(f"{r}:{e.addr:#x}")
                continue
            if r == "hlt":
                return Observation("hlt", pc=self._linear_rip(), note=self.where(self._linear_rip()))
            if r == "internal_error":
                data = ", ".join(f"{x:#x}" for x in (e.internal_data or [])[:4])
                rip = self._linear_rip()
                insn = self.insn_at(rip)
                note = f"suberror {e.suberror} data [{data}] at {self.where(rip)}: {insn or 'undecodable'}"
                return self._stop(Observation(r, pc=rip, note=note, insn=insn))
            return self._stop(Observation(r, pc=self._linear_rip(), note=e.detail or self.where(self._linear_rip())))
        return self._stop(Observation("timeout", note=f"no event of interest in {max_exits} exits"))

    def check_values(self, label: str, expected: dict[str, int], values: dict[str, int], *,
                     kind: str | None = None) -> bool:
        """Check guest values read at the last observation (the sync point the vCPU stands at)."""
        at = self.last if self.last is not None else Observation("missing", note="no exit observed yet")
        exp = Expect(at.reason if at.reason not in ("not_reached",) else "hlt", guest=expected, kind=kind)
        if self.stopped is not None and at.reason in TERMINAL:
            return self.check(label, replace(exp, reason="hlt"),
                              Observation("not_reached", note=f"the vCPU stopped earlier: {self.stopped}"))
        return self.check(label, exp, replace(at, guest=values))

    def check(self, label: str, expected: Expect, observed: Observation) -> bool:
        if expected.pc is not None and expected.note is None:
            expected = replace(expected, note=self.where(expected.pc))
        c = make_check(label, expected, observed)
        self.checks.append(c)
        return c.ok

    def expect(self, label: str, expected: Expect, **run_kw: Any) -> Observation:
        """Run to the next event and check it against ``expected``."""
        obs = self.run(**run_kw)
        self.check(label, expected, obs)
        return obs

    def expect_sequence(self, items: Sequence[Item], *, end_pc: int | None = None, max_events: int | None = None,
                        **run_kw: Any) -> list[Observation | None]:
        """Collect the exits of one stretch of the guest and check them against ``items`` in order.

        Collection stops at a sync point (HLT or the sync port), at an exit that ends the vCPU,
        at a debug exit at ``end_pc`` (default: the pc of the last item, when it is
        a debug exit) or past it (that exit is left out), or after ``max_events``.
        Expected and observed exits are then aligned (longest common subsequence
        on exit reason, pc, port and address), so one missing or extra exit is
        reported as exactly that instead of shifting every later comparison.
        Returns the observation matched to each item: the same event, whatever its other
        fields (None: missing, or an exit of another kind in its place).
        """
        if self.stopped is not None:  # nothing after the stop is reachable
            gone = Observation("not_reached", note=f"the vCPU stopped earlier: {self.stopped}")
            for item in items:
                self.check(item[0], item[1], gone)
            return [None] * len(items)
        if end_pc is None and items and items[-1][1].reason == "debug":
            end_pc = items[-1][1].pc
        limit = max_events if max_events is not None else len(items) + 8
        observed: list[Observation] = []
        while len(observed) < limit:
            obs = self.run(**run_kw)
            if obs.reason == "debug" and end_pc is not None and obs.pc is not None and obs.pc > end_pc \
                    and self.where(obs.pc) is not None:
                self.note(f"a debug exit at {self.where(obs.pc)} came after the sequence's last expected exit "
                          f"({self.where(end_pc)}) without it")
                break
            observed.append(obs)
            if obs.reason in STRETCH_END or (obs.reason == "debug" and obs.pc == end_pc):
                break
        pairs = _align([it[1] for it in items], observed)
        matched: list[Observation | None] = [None] * len(items)
        for i, j in pairs:
            if i is not None and j is not None and same_event(items[i][1], observed[j]):
                matched[i] = observed[j]
        # Items after the exit that stopped the vCPU were never reachable: not_reached, not missing.
        end = next((k for k, (_, j) in enumerate(pairs) if j is not None and observed[j].reason in TERMINAL), None)

        def stopped_before(k: int) -> bool:
            return end is not None and k > end

        last_label = "the start"
        for k, (i, j) in enumerate(pairs):
            if i is None:
                assert j is not None
                # An extra exit belongs to the expectation it came before (else the last one).
                near = next((items[p][1].kind for p, _ in pairs[k:] if p is not None), None)
                kind = near or (items[-1][1].kind if items else None)
                self.check(f"unexpected exit after {last_label}", Expect("none", kind=kind), observed[j])
                continue
            item = items[i]
            label, exp = item[0], item[1]
            if j is None and stopped_before(k):
                obs = Observation("not_reached", note=f"the vCPU stopped earlier: {self.stopped}")
            elif j is None:
                seen = ", ".join(f"{o.reason}@{self.where(o.pc)}" if o.pc is not None else o.reason for o in observed)
                obs = Observation("missing", note=f"not reported; the exits were: {seen or 'none'}")
            else:
                obs = observed[j]
            if len(item) == 3:  # the item's reader of the values the guest stored
                obs = _with_values(obs, item[2]())
            self.check(label, exp, obs)
            last_label = label
        return matched

    def collect(self, *, until_pc: int | None = None, max_events: int = 64, **run_kw: Any) -> list[Observation]:
        """The exits of one stretch: up to a debug exit at ``until_pc``, a sync point, an exit that
        ends the vCPU, or ``max_events`` exits (for checks that pick exits by a property)."""
        out: list[Observation] = []
        while len(out) < max_events:
            obs = self.run(**run_kw)
            out.append(obs)
            if obs.reason in STRETCH_END or (obs.reason == "debug" and until_pc is not None and obs.pc == until_pc):
                break
        return out

    def insn_at(self, pc: int | None) -> str | None:
        """The instruction at linear ``pc`` (identity-mapped), decoded in the mode's bitness."""
        if pc is None:
            return None
        try:
            data = self.m.read(pc, 15)
        except Exception:  # outside guest memory: nothing to decode
            return None
        ins = iced_x86.Decoder(MODE_BITS[self.mode], data, ip=pc).decode()
        return None if ins.is_invalid else _FORMATTER.format(ins)

    # Helpers -----------------------------------------------------------------
    def _linear_rip(self) -> int | None:
        try:
            return self.m.regs["rip"] + self.m.regs["cs_base"]
        except Exception:  # pragma: no cover - the vCPU state is unreadable
            return None

    def _stop(self, obs: Observation) -> Observation:
        self.stopped = f"{obs.reason}" + (f" ({obs.note})" if obs.note else "")
        return obs

    def _exit_port(self, data: bytes) -> Observation:
        code = data[0]
        if code & EXIT_STUB and (code & 0x7F) < 32:
            slots = (self.read_slot(STUB_RECORD + 8), self.read_slot(STUB_RECORD + 16))
            return self._guest_exception(code & 0x7F, slots, code=code)
        return Observation("exit", code=code, pc=self._linear_rip())

    def _guest_exception(self, vector: int, slots: tuple[int, int], *, code: int | None) -> Observation:
        """The guest took ``vector`` into its catch-all stub; ``slots``: the top two stack slots."""
        has_error = self.mode != "real" and vector in ERROR_CODE_VECTORS
        ret = slots[1] if has_error else slots[0]
        name = VECTOR_NAMES.get(vector, f"vector {vector}")
        extra = f", error code {slots[0]:#x}" if has_error else ""
        return Observation("guest_exception", exception=vector, pc=ret, code=code,
                           note=f"the guest took {name} (return address {self.where(ret)}{extra})")

    def _stub_vector(self, pc: int | None) -> int | None:
        """The vector of the catch-all stub ``pc`` is in (the stubs' first instruction changes no stack)."""
        where = self.where(pc) or ""
        name = where.split("+", 1)[0]
        if not name.startswith("exc_") or not name[4:].isdigit():
            return None
        return int(name[4:])

    def _stack_slots(self) -> tuple[int, int]:
        sp = self.m.regs["rsp"] + self.m.regs["ss_base"]
        return self.read_slot(sp), self.read_slot(sp + SLOT_BYTES[self.mode])


_FORMATTER = iced_x86.Formatter(iced_x86.FormatterSyntax.INTEL)


def _with_values(obs: Observation, values: dict[str, int]) -> Observation:
    return replace(obs, guest={**obs.guest, **values})
