"""Previous-event chains: for each row of a chunk, the row of the previous event
of the same vCPU (any event, or only #DB events), carried across chunks.

With one vCPU the previous event is the previous row.  With several, it is found
per chunk (a few vCPUs: one mask per vCPU; many: one stable sort of the chunk's
vCPU ids) plus the last row seen per vCPU id, so chunking gives the same answer
as one pass over the whole trace."""

from __future__ import annotations

import numpy as np

from kvmtrace.exceptions import InternalError

#: vCPU ids are u16.
_VCPU_IDS = 1 << 16
#: Up to this many vCPUs in a chunk are handled with one mask each.
_FEW_VCPUS = 8


def previous_rows(vcpu: np.ndarray, lo: int, hi: int, sel: np.ndarray | None, carry: np.ndarray) -> np.ndarray:
    """For each row of [lo, hi): index of the previous row of the same vCPU
    (among rows where ``sel``; -1 if none).  ``carry`` holds the last such
    index per vCPU id and is updated."""
    m = hi - lo
    prev = np.full(m, -1, dtype=np.int64)
    v = vcpu[lo:hi]
    pos = None
    if sel is not None:
        pos = np.flatnonzero(sel)
        if pos.size == 0:
            return prev
        v = v[pos]
    vmin, vmax = int(v.min()), int(v.max())
    if vmin == vmax:
        groups: list[tuple[int, np.ndarray | None]] = [(vmin, None)]
    else:
        present = np.flatnonzero(np.bincount(v - np.uint16(vmin))) + vmin
        groups = [(int(g), np.flatnonzero(v == g)) for g in present] if present.size <= _FEW_VCPUS else []
    if not groups:
        return _previous_rows_sorted(v, pos, lo, prev, carry)
    for g, rows in groups:
        if rows is None:
            rows = np.arange(v.size, dtype=np.int64)
        loc = rows if pos is None else pos[rows]
        prev[loc[1:]] = loc[:-1] + lo
        prev[loc[0]] = carry[g]
        carry[g] = int(loc[-1]) + lo
    return prev


def _previous_rows_sorted(v: np.ndarray, pos: np.ndarray | None, lo: int, prev: np.ndarray,
                          carry: np.ndarray) -> np.ndarray:
    """:func:`previous_rows` for a chunk with many vCPUs: one stable sort by vCPU id."""
    o = np.argsort(v, kind="stable")
    ps = (o if pos is None else pos[o]).astype(np.int64)
    ps += lo
    vs = v[o]
    newgrp = np.empty(ps.size, dtype=bool)
    newgrp[0] = True
    np.not_equal(vs[1:], vs[:-1], out=newgrp[1:])
    prev_sorted = np.empty(ps.size, dtype=np.int64)
    prev_sorted[1:] = ps[:-1]
    g = np.flatnonzero(newgrp)  # first row of each vCPU in this chunk
    prev_sorted[g] = carry[vs[g]]
    last = np.append(g[1:] - 1, ps.size - 1)
    carry[vs[last]] = ps[last]
    prev[ps - lo] = prev_sorted
    return prev


class Chains:
    """The two chains of one analysis run, fed chunk by chunk in trace order.

    ``need_prev``: some active rule needs the previous event of the same vCPU
    (with several vCPUs it is not computed otherwise)."""

    def __init__(self, vcpu: np.ndarray, single_vcpu: bool, need_prev: bool):
        self.vcpu = vcpu
        self.single_vcpu = single_vcpu
        self.need_prev = need_prev
        self._last_db = -1  # last #DB row (one vCPU)
        self._carry_any = None if single_vcpu else np.full(_VCPU_IDS, -1, dtype=np.int64)
        self._carry_db = None if single_vcpu else np.full(_VCPU_IDS, -1, dtype=np.int64)

    def prev_any(self, lo: int, hi: int) -> np.ndarray:
        """Previous event of the same vCPU, several vCPUs (-1: none)."""
        if self._carry_any is None:
            raise InternalError("kvmtrace.analysis: per-vCPU chain asked for on a one-vCPU trace")
        return previous_rows(self.vcpu, lo, hi, None, self._carry_any)

    def prev_db(self, lo: int, hi: int, db: np.ndarray) -> np.ndarray:
        """Previous #DB event (``db``: chunk mask of #DB rows) of the same vCPU (-1: none)."""
        if self._carry_db is not None:
            return previous_rows(self.vcpu, lo, hi, db, self._carry_db)
        m = hi - lo
        idx = np.where(db, np.arange(lo, hi, dtype=np.int64), np.int64(-1))
        incl = np.maximum.accumulate(idx)
        np.maximum(incl, self._last_db, out=incl)
        prevdb = np.empty(m, dtype=np.int64)
        prevdb[0] = self._last_db
        prevdb[1:] = incl[:-1]
        self._last_db = int(incl[-1])
        return prevdb
