"""Helpers shared by the bench_*.py files (pairing with a reference, extra_info)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from kvmtrace.bench import Measurement, rusage_tick_s, user_gap


def paired(
    benchmark: Any,
    target: Callable[[], Measurement],
    reference: Callable[[], Measurement] | None,
    rounds: int,
) -> tuple[list[Measurement], list[Measurement]]:
    """Time ``target`` with pytest-benchmark, running ``reference`` once per round too.

    The reference runs untimed right before the target on even rounds and right
    after it on odd rounds (pedantic setup/teardown), so each round gives a
    (target, reference) pair measured back to back, in alternating order. With
    benchmarks disabled, pytest-benchmark runs setup + target once.
    """
    mine: list[Measurement] = []
    refs: list[Measurement] = []
    state = {"round": 0}

    def setup() -> None:
        if reference is not None and state["round"] % 2 == 0:
            refs.append(reference())

    def teardown() -> None:
        if reference is not None and state["round"] % 2 == 1:
            refs.append(reference())
        state["round"] += 1

    def run() -> Measurement:
        m = target()
        mine.append(m)
        return m

    benchmark.pedantic(run, setup=setup, teardown=teardown, rounds=rounds, iterations=1, warmup_rounds=0)
    return mine, refs


def record(benchmark: Any, mine: list[Measurement], refs: list[Measurement] | None = None,
           ref_name: str = "C") -> dict[str, Any]:
    """Fill extra_info with loop-internal events/s (median, best, rounds) and the ratio to the reference.

    Also the same per CPU-second (``cpu_events_per_s``, ``cpu_ratio_to_C``): CPU time
    is not inflated when other processes share the machine's CPUs, so on a busy
    machine it is the steadier comparison of per-exit cost.
    """
    rates = [m.events_per_s for m in mine]
    info: dict[str, Any] = {
        "events": mine[0].events,
        "events_per_s": statistics.median(rates),
        "events_per_s_best": max(rates),
        "events_per_s_rounds": [round(r, 1) for r in rates],
        "loop_seconds_rounds": [round(m.seconds, 6) for m in mine],
    }
    if refs:
        n = min(len(mine), len(refs))
        ratios = [mine[i].events_per_s / refs[i].events_per_s for i in range(n) if refs[i].events_per_s > 0]
        ref_rates = [r.events_per_s for r in refs]
        info.update({
            "reference": ref_name,
            "reference_events_per_s": statistics.median(ref_rates),
            "reference_events_per_s_rounds": [round(r, 1) for r in ref_rates],
            f"ratio_to_{ref_name}": statistics.median(ratios) if ratios else None,
            f"ratio_to_{ref_name}_rounds": [round(r, 4) for r in ratios],
            f"ratio_to_{ref_name}_best": max(rates) / max(ref_rates),
        })
    cpu = [m.cpu_events_per_s for m in mine if m.cpu_events_per_s is not None]
    if cpu:
        info["cpu_events_per_s"] = statistics.median(cpu)
        info["cpu_events_per_s_rounds"] = [round(r, 1) for r in cpu]
    if refs:
        cpu_pairs = [a / b for a, b in ((m.cpu_events_per_s, r.cpu_events_per_s) for m, r in zip(mine, refs))
                     if a is not None and b]
        if cpu_pairs:
            info[f"cpu_ratio_to_{ref_name}"] = statistics.median(cpu_pairs)
            info[f"cpu_ratio_to_{ref_name}_rounds"] = [round(r, 4) for r in cpu_pairs]
    info.update(_user_time(mine, refs, ref_name))
    benchmark.extra_info.update(info)
    return info


def _user_time(mine: list[Measurement], refs: list[Measurement] | None, ref_name: str) -> dict[str, Any]:
    """User-space ns per exit of the loop thread (median), and the median per-round
    difference to the reference: what the contender adds on top of the kernel's work.
    getrusage splits CPU time by tick samples, so single rounds scatter; the median of
    paired rounds is the figure, with its resolution from tick sampling (``user_gap``)."""
    out: dict[str, Any] = {}
    mine_u = [m.user_ns_per_exit for m in mine]
    if any(u is None for u in mine_u):
        return out
    out["user_ns_per_exit"] = statistics.median(mine_u)
    out["user_ns_per_exit_rounds"] = [round(u, 1) for u in mine_u]  # type: ignore[arg-type]
    out["rusage_tick_s"] = rusage_tick_s()
    ref_u = [r.user_ns_per_exit for r in refs or []]
    if ref_u and not any(u is None for u in ref_u) and (g := user_gap(mine, refs or [])) is not None:
        out[f"{ref_name}_user_ns_per_exit"] = g.ref_ns
        out[f"{ref_name}_user_ns_per_exit_rounds"] = [round(u, 1) for u in ref_u]  # type: ignore[arg-type]
        out[f"user_ns_per_exit_over_{ref_name}"] = g.gap_ns
        out[f"user_ns_per_exit_over_{ref_name}_resolution"] = g.resolution_ns
    return out
