"""The trace as the rules see it: columns in ``seq`` order, the map back to the
caller's row indices, the debug configuration, the decoded code, and the
per-event helpers the rules share (classification of one event, the previous
event of a vCPU, properties of decoded instructions, violation records)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kvmtrace._core import VECTOR_BP, VECTOR_DB, Dr6
from kvmtrace.analysis.classify import Classes, classify
from kvmtrace.analysis.code import CodeCache, Insn
from kvmtrace.analysis.config import DebugConfig, bitness
from kvmtrace.analysis.report import Violation
from kvmtrace.exceptions import InternalError

#: Rows scanned per step when searching backwards for a vCPU's previous event.
_SCAN = 4096


class TraceView:
    """Columns sorted by ``seq`` (permuted only when ``seq`` is not monotonic).

    Row indices used inside the analysis are positions in the sorted columns;
    :meth:`orig_index` maps them back to the input trace."""

    def __init__(self, pc: np.ndarray, dr6: np.ndarray, dr7: np.ndarray, exc: np.ndarray,
                 vcpu: np.ndarray, seq: np.ndarray, cfg: DebugConfig | None, mode: str | None, memory: Any):
        n = int(pc.shape[0])
        self.n = n
        self.single_vcpu = n == 0 or int(vcpu.min()) == int(vcpu.max())
        if self.single_vcpu:
            self.vcpus = 1 if n else 0
        else:
            self.vcpus = int(np.count_nonzero(np.bincount(vcpu)))
        order = None
        if n > 1 and np.any(seq[1:] < seq[:-1]):
            order = np.argsort(seq, kind="stable")
            pc, dr6, dr7, exc, vcpu, seq = (a[order] for a in (pc, dr6, dr7, exc, vcpu, seq))
        self.orig = order
        self.pc, self.dr6, self.dr7, self.exc, self.vcpu, self.seq = pc, dr6, dr7, exc, vcpu, seq
        self.all_db = n == 0 or (int(exc.min()) == VECTOR_DB and int(exc.max()) == VECTOR_DB)
        self.cfg = cfg
        self.mode = mode
        self.bitness = bitness(mode)
        self.memory = memory
        self.code = CodeCache(memory, self.bitness) if (memory is not None and self.bitness) else None
        # kvmtrace steps past instruction faults (exec/GD breakpoints, INT3) with
        # single-step on and the trigger disarmed.
        self.stepping_over = cfg is not None and bool(cfg.exec_slots or cfg.general_detect or cfg.sw.size)
        self._memo: dict[str, Any] = {}

    @property
    def config(self) -> DebugConfig:
        """The debug configuration (present for every rule with ``needs_config``)."""
        if self.cfg is None:
            raise InternalError("kvmtrace.analysis: a rule that needs the debug configuration ran without one")
        return self.cfg

    @property
    def decoder(self) -> CodeCache:
        """The instruction decoder (present when the trace has code bytes and a known mode)."""
        if self.code is None:
            raise InternalError("kvmtrace.analysis: instructions decoded without code bytes or mode")
        return self.code

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per analysis (tables a rule needs over the whole trace)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    # ---- references to events -------------------------------------------
    def orig_index(self, i: int) -> int:
        return int(i) if self.orig is None else int(self.orig[i])

    def violation(self, i: int, field: str, expected: str, observed: str, message: str = "") -> Violation:
        i = int(i)
        return Violation(self.orig_index(i), int(self.seq[i]), int(self.vcpu[i]), int(self.pc[i]),
                         field, expected, observed, message)

    def ev(self, i: int) -> str:
        """Short reference to event ``i`` (sorted index) for messages."""
        return f"#{self.orig_index(i)} (pc={int(self.pc[i]):#x}, dr6={int(self.dr6[i]):#x})"

    def prev_row(self, i: int) -> int:
        """Previous row of the same vCPU (sorted space), -1 if none."""
        if self.single_vcpu:
            return i - 1
        v = self.vcpu[i]
        hi = i
        while hi > 0:
            lo = max(0, hi - _SCAN)
            hit = np.flatnonzero(self.vcpu[lo:hi] == v)
            if hit.size:
                return lo + int(hit[-1])
            hi = lo
        return -1

    # ---- classification -------------------------------------------------
    def classify(self, a: int, b: int) -> Classes:
        """Classification of rows [a, b) (needs a debug configuration)."""
        return classify(self.config, self.pc[a:b], self.dr6[a:b])

    def classify_one(self, i: int, j: int = -1) -> dict[str, int]:
        """Classification of event ``i`` as ints; ``j`` is its predecessor (for step-overs)."""
        d = self.classify(i, i + 1)
        out = {name: int(np.asarray(getattr(d, name)).reshape(-1)[0]) for name in Classes.__slots__}
        out["stepover"] = 0
        if j >= 0 and self.stepping_over:
            dj = self.classify(j, j + 1)
            exc_j = int(self.exc[j])
            if (exc_j == VECTOR_DB and bool(np.asarray(dj.fault).reshape(-1)[0])) or exc_j == VECTOR_BP:
                out["stepover"] = 1
                out["allowed"] |= Dr6.BS
        return out

    # ---- decoded instructions -------------------------------------------
    def props(self, pcs: np.ndarray, fn: Callable[[Insn], Any], dtype: Any = bool) -> np.ndarray:
        """``fn(decoded instruction)`` for each pc, decoding distinct pcs once."""
        code = self.decoder
        uniq, inv = np.unique(pcs, return_inverse=True)
        vals = np.array([fn(code.get(u)) for u in uniq.tolist()], dtype=dtype)
        return vals[inv.reshape(-1)]

    def data_ok_bits(self, pcs_exec: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Subset of data-slot ``bits`` plausible after executing the instruction at ``pcs_exec``."""
        slots = [(s.kind, Dr6.b(s.index)) for s in self.config.data_slots]

        def plausible(ins: Insn) -> int:
            out = 0
            for kind, bn in slots:
                if not ins.decoded or ins.any_access:
                    ok = True
                elif kind == "write":
                    ok = ins.writes
                elif kind == "rw":
                    ok = ins.reads or ins.writes
                else:
                    ok = ins.io
                out |= bn if ok else 0
            return out

        return self.props(pcs_exec, plausible, dtype=np.uint16) & bits
