"""``dr6_cause``: #DB events carry cause bits (B0-B3, BD, BS, BT) within the
allowed set of the event's class and including the required ones.  ``Bn`` of a
disabled or unconfigured slot, ``BD`` without general detect, ``BS`` without
single-step and ``BT`` are never justified.  Data ``Bn`` cannot be tied to an
access from the columns, so it is accepted for any enabled data slot.  Without
single-step a trap must carry some justified bit; at an enabled exec address
without a data cause the missing exec ``Bn`` is reported.  The event right after
a fault the tracer steps over may carry ``BS``."""

from __future__ import annotations

from kvmtrace._core import Dr6
from kvmtrace.analysis.collect import Collector
from kvmtrace.analysis.config import SLOTS, bits_name
from kvmtrace.analysis.context import Chunk
from kvmtrace.analysis.report import Violation, hex_or_dash
from kvmtrace.analysis.rules.base import Rule
from kvmtrace.analysis.view import TraceView


def check(c: Chunk, acc: Collector) -> None:
    cause, allowed, required = c.cause_c, c.allowed_c, c.required_c
    bad = ((cause & ~allowed) != 0) | ((required & ~cause) != 0)
    if not c.config.single_step:
        bad |= ((cause & allowed) == 0) & (required == 0)
    acc.add(c.lo, [("cause", c.only_db(bad), c.prev_any)], c.n_db)


def _unjustified(view: TraceView, bits: int, fault: bool) -> list[str]:
    """Why each unjustified cause bit in ``bits`` is wrong."""
    cfg = view.config
    msgs = []
    for b in range(SLOTS):
        if bits & Dr6.b(b):
            s = cfg.slots[b]
            if s is not None and s.enabled and s.kind == "exec":
                msgs.append(f"B{b} set but pc != DR{b} ({s.addr:#x})")
            elif s is not None and s.enabled and fault:
                msgs.append(f"B{b} (data breakpoint) set on a fault event")
            else:
                msgs.append(f"B{b} set but {cfg.slot_desc(b)}")
    if bits & Dr6.BS:
        msgs.append("BS set on a fault event" if cfg.single_step else "BS set but single-step is off")
    if bits & Dr6.BD:
        msgs.append("BD set but general detect is off" if not cfg.general_detect else "BD with other causes")
    if bits & Dr6.BT:
        msgs.append("BT (task switch) set")
    return msgs


def describe(view: TraceView, sub: str, i: int, j: int) -> Violation:
    cfg = view.config
    d = view.classify_one(i, j)
    c, a, r = d["cause"], d["allowed"], d["required"]
    msgs = _unjustified(view, c & ~a, bool(d["fault"]))
    if r & ~c:
        msgs.append(f"missing {bits_name(r & ~c)}")
    exp_s = hex_or_dash(Dr6.CLEAN | (c & a) | r)
    if (c & a) == 0 and r == 0:
        if cfg.data_slots:
            exp_s += f" + one of {bits_name(cfg.data_mask)}"
            msgs.append("no cause bit explains this #DB (expected an enabled data breakpoint's Bn)")
        else:
            exp_s = "no #DB"
            msgs.append("no configured debug feature explains this #DB")
    return view.violation(i, "dr6", exp_s, hex_or_dash(int(view.dr6[i])), "; ".join(msgs))


RULE = Rule(
    "dr6_cause",
    "DR6 cause bits (B0-B3, BD, BS, BT) are exactly those the event justifies",
    check, describe,
    needs_prev=lambda view: view.stepping_over,
)
