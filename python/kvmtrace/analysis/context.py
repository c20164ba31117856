"""The per-chunk arrays the rules share, computed once per chunk by the engine.

Suffix ``_c``: the chunk's own rows; ``_p``: the previous event of the same vCPU
(valid where ``has_prev``).  A field that is the same for every row is a numpy
scalar (``np.True_``, ``np.uint16(0)``), which broadcasts like an array."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kvmtrace._core import VECTOR_BP, VECTOR_DB, Dr6
from kvmtrace.analysis.chains import Chains
from kvmtrace.analysis.classify import Classes, classify
from kvmtrace.analysis.config import DebugConfig
from kvmtrace.analysis.view import TraceView
from kvmtrace.exceptions import InternalError


def cut(x: Any, off: int) -> Any:
    """The chunk's rows of ``x``, an array that starts ``off`` rows early (or a scalar)."""
    return x[off:] if isinstance(x, np.ndarray) else x


def shift(x: Any, off: int) -> Any:
    """Values at the previous position, aligned with ``cut(x, off)``."""
    if not isinstance(x, np.ndarray):
        return x
    if off:
        return x[:-1]
    return np.concatenate((x[:1], x[:-1]))  # position 0 has no predecessor (masked)


def count(mask: Any, m: int) -> int:
    """True rows of a mask over ``m`` rows (a scalar mask counts for all or none)."""
    if isinstance(mask, np.ndarray):
        return int(np.count_nonzero(mask))
    return m if mask else 0


class Chunk:
    """Rows [lo, hi) of the sorted trace.  ``e0`` is ``lo - 1`` (the row before,
    for the one-vCPU previous-row view) or 0 for the first chunk; ``off = lo - e0``."""

    view: TraceView
    cfg: DebugConfig | None
    chains: Chains
    lo: int
    hi: int
    m: int
    e0: int
    off: int
    pc_c: np.ndarray
    pc_p: np.ndarray
    dr6_c: np.ndarray
    db_c: np.ndarray | None  # None: every event is a #DB
    bp_c: np.ndarray | None
    db_p: Any
    bp_p: Any
    n_db: int
    has_prev: Any
    prev_any: Callable[[np.ndarray], np.ndarray] | None  # chunk rows -> previous rows
    n_prev: int
    d: Classes | None  # classification of rows [e0, hi)
    cause_c: Any
    allowed_c: Any  # step-over BS included
    required_c: Any
    fault_c: Any
    gd_c: Any
    match_c: Any
    stepover: bool  # the previous event's classes below are set
    xf_p: Any  # previous event was an exec fault (#DB)
    gf_p: Any  # previous event was a GD fault (#DB)
    match_p: Any

    def __init__(self, view: TraceView, chains: Chains, lo: int, hi: int):
        self.view, self.cfg, self.chains = view, view.cfg, chains
        self.lo, self.hi, self.m = lo, hi, hi - lo
        self.e0 = lo - 1 if lo else 0
        self.off = lo - self.e0
        self._pidx: np.ndarray | None = None
        self._dp: Classes | None = None
        self._events()
        self._previous()
        self._classes()

    @property
    def config(self) -> DebugConfig:
        """The debug configuration (for rules with ``needs_config``)."""
        return self.view.config

    @property
    def classes(self) -> Classes:
        """Classification of rows [e0, hi) (for rules with ``needs_config``)."""
        if self.d is None:
            raise InternalError("kvmtrace.analysis: events classified without a debug configuration")
        return self.d

    def only_db(self, mask: Any) -> Any:
        """``mask`` restricted to #DB events."""
        return mask if self.db_c is None else (mask & self.db_c)

    def prev_classes(self) -> Classes:
        """Fault classification of each row's previous event (several vCPUs)."""
        if self._dp is None:
            if self._pidx is None:
                raise InternalError("kvmtrace.analysis: previous events asked for without the chains")
            self._dp = classify(self.config, self.pc_p, self.view.dr6[self._pidx], faults_only=True)
        return self._dp

    def _events(self) -> None:
        v, lo, hi, off = self.view, self.lo, self.hi, self.off
        pc_e = v.pc[self.e0:hi]
        self.pc_c, self.pc_p = pc_e[off:], shift(pc_e, off)
        self.dr6_c = v.dr6[lo:hi]
        if v.all_db:
            self.db_c = self.bp_c = None
            self.db_p, self.bp_p = np.True_, np.False_
            self.n_db = self.m
        else:
            exc_e = v.exc[self.e0:hi]
            db_e = exc_e == VECTOR_DB
            bp_e = exc_e == VECTOR_BP
            db_c = db_e[off:]
            self.db_c, self.db_p = db_c, shift(db_e, off)
            self.bp_c, self.bp_p = bp_e[off:], shift(bp_e, off)
            self.n_db = int(np.count_nonzero(db_c))

    def _previous(self) -> None:
        """The previous event of the same vCPU."""
        v, lo, hi = self.view, self.lo, self.hi
        if v.single_vcpu:
            if lo:
                self.has_prev = np.True_
            else:
                self.has_prev = np.ones(self.m, dtype=bool)
                self.has_prev[0] = False
            self.prev_any = lambda loc: loc + (lo - 1)
        elif not self.chains.need_prev:
            self.has_prev = np.False_
            self.prev_any = None
        else:
            prev = self.chains.prev_any(lo, hi)
            self.has_prev = prev >= 0
            self._pidx = np.maximum(prev, 0)
            self.pc_p = v.pc[self._pidx]
            if not v.all_db:
                exc_p = v.exc[self._pidx]
                self.db_p, self.bp_p = exc_p == VECTOR_DB, exc_p == VECTOR_BP
            self.prev_any = lambda loc: prev[loc]
        self.n_prev = count(self.has_prev, self.m)

    def _classes(self) -> None:
        self.stepover = False
        self.xf_p = self.gf_p = self.match_p = None
        if self.cfg is None:
            self.d = None
            self.cause_c = self.allowed_c = self.required_c = None
            self.fault_c = self.gd_c = self.match_c = None
            return
        off = self.off
        d = self.d = self.view.classify(self.e0, self.hi)
        self.cause_c = d.cause[off:]
        self.allowed_c, self.required_c = cut(d.allowed, off), cut(d.required, off)
        self.fault_c, self.gd_c, self.match_c = cut(d.fault, off), cut(d.gd_fault, off), cut(d.match, off)
        if self.view.stepping_over and self.chains.need_prev:
            self._stepover(d)

    def _stepover(self, d: Classes) -> None:
        """The tracer steps past a parked fault (exec/GD breakpoint, INT3) with
        single-step on and the trigger disarmed: the next event of that vCPU may
        carry BS and the temporary DR7."""
        if self.view.single_vcpu:
            off = self.off
            xf_p, gf_p, match_p = shift(d.exec_fault, off), shift(d.gd_fault, off), shift(d.match, off)
        else:
            dp = self.prev_classes()
            xf_p, gf_p, match_p = dp.exec_fault, dp.gd_fault, dp.match
        self.xf_p = xf_p & self.db_p & self.has_prev
        self.gf_p = gf_p & self.db_p & self.has_prev
        self.match_p = match_p
        self.stepover = True
        after_fault = self.xf_p | self.gf_p | (self.bp_p & self.has_prev)
        self.allowed_c = self.allowed_c | np.where(after_fault, np.uint16(Dr6.BS), np.uint16(0))
